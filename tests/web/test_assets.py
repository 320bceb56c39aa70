"""Vendored assets: as listed in the manifest, served by the app with long cache headers."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import re
from pathlib import Path
from types import ModuleType

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Route

from app.web.assets import IMMUTABLE, VENDOR_DIR, vendor_route, vendored
from app.web.graphiql import graphiql_html

ROOT = Path(__file__).resolve().parents[2]


def vendor_script() -> ModuleType:
    """scripts/vendor-assets as a module (it has no .py suffix)."""
    path = ROOT / "scripts" / "vendor-assets"
    loader = importlib.machinery.SourceFileLoader("vendor_assets", str(path))
    spec = importlib.util.spec_from_loader("vendor_assets", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def test_every_vendored_file_matches_the_manifest() -> None:
    script = vendor_script()
    manifest = json.loads((VENDOR_DIR / "manifest.json").read_text())
    assert script.problems(manifest) == []
    for package in manifest["packages"]:
        assert package["license"] and package["version"] and package["files"], package


def test_the_check_notices_a_changed_file(tmp_path: Path) -> None:
    script = vendor_script()
    manifest = json.loads((VENDOR_DIR / "manifest.json").read_text())
    first = manifest["packages"][0]
    name = next(iter(first["files"]))
    first["files"][name] = script.integrity(b"something else")
    assert script.problems(manifest) == [
        f"{first['name']}@{first['version']}: {name} differs from the manifest's hash"
    ]


def test_graphiql_page_loads_nothing_from_elsewhere() -> None:
    html = graphiql_html()
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert sources and all(s.startswith(("/static/vendor/", "data:")) for s in sources), sources
    assert "unpkg" not in html and "Cookies" not in html
    react = vendored("react", "umd/react.production.min.js")
    assert f'src="{react.url}" integrity="{react.integrity}"' in html


@pytest.fixture
def client() -> httpx.AsyncClient:
    app = Starlette(routes=[Route("/", lambda _: None), vendor_route()])
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def test_vendored_files_are_served_with_long_cache_headers(
    client: httpx.AsyncClient,
) -> None:
    asset = vendored("graphiql", "graphiql.min.css")
    response = await client.get(asset.url)
    assert response.status_code == 200
    assert response.headers["cache-control"] == IMMUTABLE
    assert response.headers["content-type"].startswith("text/css")
    assert vendor_script().integrity(response.content) == asset.integrity
    assert (await client.get("/static/vendor/graphiql@0.0.0/graphiql.min.css")).status_code == 404
    assert (await client.get("/static/vendor/../manifest.json")).status_code == 404
