"""Vendored browser assets: the manifest, their URLs, and the static route that serves them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from starlette.responses import Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

VENDOR_DIR = Path(__file__).parent / "vendor"
VENDOR_PREFIX = "/static/vendor"
IMMUTABLE = "public, max-age=31536000, immutable"


@dataclass(frozen=True)
class Asset:
    """One vendored file: where the browser gets it and the hash it must have."""

    url: str
    integrity: str


@cache
def _packages() -> dict[str, dict[str, Any]]:
    manifest = json.loads((VENDOR_DIR / "manifest.json").read_text())
    return {p["name"]: p for p in manifest["packages"]}


def vendored(package: str, file: str) -> Asset:
    """The URL and integrity of `file` of a package listed in app/web/vendor/manifest.json."""
    entry = _packages()[package]
    return Asset(
        url=f"{VENDOR_PREFIX}/{package}@{entry['version']}/{file}",
        integrity=entry["files"][file],
    )


class VersionedStaticFiles(StaticFiles):
    """Static files whose paths carry their version: browsers may cache them for a year."""

    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers["Cache-Control"] = IMMUTABLE
        return response

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        if response.status_code == 404:
            response.headers["Cache-Control"] = "no-store"
        return response


def vendor_route() -> Mount:
    """`/static/vendor/<name>@<version>/<file>`, served from the package."""
    return Mount(VENDOR_PREFIX, VersionedStaticFiles(directory=VENDOR_DIR), name="vendor")
