"""The dashboard, checklist and sign-in pages: static files, a strict Content-Security-Policy."""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from app.settings import Settings

WEB = Path(__file__).parent
PAGES = WEB / "pages"
STATIC_PREFIX = "/static/app"


def content_security_policy(request: Request, *, frame_ancestors: str) -> str:
    """Only this app's scripts, styles and websocket; no inline script; framing as configured."""
    host = request.headers.get("host", "")
    websocket = f"ws://{host} wss://{host}" if host else ""
    return "; ".join(
        [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            "font-src 'self'",
            f"connect-src 'self' {websocket}".strip(),
            "base-uri 'none'",
            "form-action 'self'",
            f"frame-ancestors {frame_ancestors}",
        ]
    )


def page(name: str, *, embeddable: bool, settings: Settings) -> Route:
    """`/<name>`: the page's HTML shell with its security headers."""
    path = PAGES / f"{name}.html"

    async def endpoint(request: Request) -> Response:
        ancestors = settings.embed_frame_ancestors if embeddable else "'none'"
        response = FileResponse(path, media_type="text/html; charset=utf-8")
        response.headers.update(
            {
                "Content-Security-Policy": content_security_policy(
                    request, frame_ancestors=ancestors
                ),
                "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "no-referrer",
                "Cache-Control": "no-cache",
            }
        )
        return response

    return Route(f"/{name}", endpoint, methods=["GET"], name=name)


def page_routes(settings: Settings) -> list[BaseRoute]:
    """The pages, their scripts and styles, and `/` leading to the sign-in page."""

    async def home(_: Request) -> Response:
        return RedirectResponse("/dashboard")

    return [
        Route("/", home, methods=["GET"]),
        page("signin", embeddable=False, settings=settings),
        page("dashboard", embeddable=False, settings=settings),
        page("checklist", embeddable=True, settings=settings),
        Mount(STATIC_PREFIX, StaticFiles(directory=WEB / "static"), name="app-static"),
    ]
