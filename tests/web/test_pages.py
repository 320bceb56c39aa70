"""The pages' shells: security headers, and only local, vendored or own files referenced."""

from __future__ import annotations

import json
import re

import httpx
import pytest
from starlette.applications import Starlette

from app.settings import Settings
from app.web.assets import VENDOR_DIR, vendor_route
from app.web.pages import PAGES, WEB, page_routes

EMBEDDER = "https://app.example.com"


def app() -> Starlette:
    settings = Settings(secret_key="x" * 40, embed_frame_ancestors=EMBEDDER)
    return Starlette(routes=[vendor_route(), *page_routes(settings)])


async def get(path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app())
    async with httpx.AsyncClient(transport=transport, base_url="http://pages.test") as client:
        return await client.get(path)


def policy(response: httpx.Response) -> dict[str, str]:
    header = response.headers["content-security-policy"]
    return {d.split(" ", 1)[0]: d.split(" ", 1)[1] for d in header.split("; ")}


@pytest.mark.parametrize("page", ["signin", "dashboard", "checklist"])
async def test_pages_allow_only_own_scripts_and_websocket(page: str) -> None:
    response = await get(f"/{page}")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    csp = policy(response)
    assert csp["default-src"] == "'none'"
    assert csp["script-src"] == "'self'"
    assert csp["style-src"] == "'self'"
    assert csp["connect-src"] == "'self' ws://pages.test wss://pages.test"
    assert csp["frame-ancestors"] == (EMBEDDER if page == "checklist" else "'none'")
    assert "<script>" not in response.text and " on" not in response.text.split("<body")[1]


def local_references() -> dict[str, list[str]]:
    """Every URL the pages, scripts and styles reference, per file."""
    found = {}
    for path in [*PAGES.glob("*.html"), *(WEB / "static").glob("*")]:
        text = path.read_text()
        refs = re.findall(r"""(?:src|href)="(/[^"]+)"|from "(\.?/[^"]+)"|url\((/[^)]+)\)""", text)
        found[path.name] = [next(r for r in group if r) for group in refs]
    return found


async def test_every_reference_is_served_and_nothing_is_remote() -> None:
    for name, refs in local_references().items():
        for ref in refs:
            if ref == "/graphql":  # the API itself, not mounted in this app
                continue
            path = ref if ref.startswith("/") else f"/static/app/{ref.removeprefix('./')}"
            response = await get(path)
            assert response.status_code == 200, f"{name} references {ref}: {response.status_code}"
        text = (PAGES / name if name.endswith(".html") else WEB / "static" / name).read_text()
        remote = re.findall(r"""(?:src|href|from|import)\s*=?\s*["'](https?:)?//""", text)
        assert remote == [], f"{name} loads something remote"


def test_vendored_modules_are_those_of_the_manifest() -> None:
    manifest = json.loads((VENDOR_DIR / "manifest.json").read_text())
    listed = {
        f"/static/vendor/{p['name']}@{p['version']}/{file}"
        for p in manifest["packages"]
        for file in p["files"]
    }
    used = re.findall(r'"(/static/vendor/[^"]+)"', (WEB / "static" / "vendor.js").read_text())
    assert used and set(used) <= listed


async def test_home_leads_to_the_dashboard() -> None:
    response = await get("/")
    assert response.status_code in (302, 307) and response.headers["location"] == "/dashboard"
