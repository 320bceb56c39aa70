"""The GraphiQL page, with every asset served from the vendored copies."""

from __future__ import annotations

from functools import cache
from html import escape
from pathlib import Path

from app.web.assets import vendored

_TEMPLATE = Path(__file__).with_name("graphiql.html")
_HEAD = [
    ("react", "umd/react.production.min.js"),
    ("react-dom", "umd/react-dom.production.min.js"),
    ("graphiql", "graphiql.min.css"),
    ("@graphiql/plugin-explorer", "dist/style.css"),
]
_BODY = [("graphiql", "graphiql.min.js"), ("@graphiql/plugin-explorer", "dist/index.umd.js")]


def _tag(package: str, file: str) -> str:
    asset = vendored(package, file)
    url, sri = escape(asset.url), escape(asset.integrity)
    if file.endswith(".css"):
        return f'<link rel="stylesheet" href="{url}" integrity="{sri}" />'
    return f'<script src="{url}" integrity="{sri}"></script>'


@cache
def graphiql_html() -> str:
    """Strawberry's GraphiQL page (headers editor, explorer, graphql-transport-ws) offline."""
    return (
        _TEMPLATE.read_text()
        .replace("{{ HEAD_ASSETS }}", "\n    ".join(_tag(*a) for a in _HEAD))
        .replace("{{ BODY_ASSETS }}", "\n    ".join(_tag(*a) for a in _BODY))
    )
