"""ASGI middleware: a request id per HTTP request and websocket, the security headers of every
HTTP answer, HTTP and websocket counts; one layer, so an answer passes one wrapper."""

from __future__ import annotations

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.headers import request_header, secured
from app.kit.context import request_id
from app.ops import metrics
from app.ops.logs import request_id_of

_ROUTES = ("/graphql", "/healthz", "/readyz", "/metrics", "/static", "/dashboard", "/checklist")


def route_label(path: str) -> str:
    """A bounded label for a request path."""
    for prefix in _ROUTES:
        if path == prefix or path.startswith(prefix + "/"):
            return prefix
    return "other"


class RequestContext:
    """Binds a request id (from `X-Request-ID` or new) for logs and audit entries, returns it
    in the response with the security headers (`app.headers.secured`), and counts requests
    and open websockets."""

    def __init__(self, app: ASGIApp, *, count: bool = True) -> None:
        self.app = app
        self.count = count

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        rid = request_id_of(request_header(scope, b"x-request-id"))
        token = request_id.set(rid)
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=rid)
        status = [500]

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
                headers = secured(list(message.get("headers", [])))
                headers.append((b"x-request-id", rid.encode("latin-1")))
                message = {**message, "headers": headers}
            await send(message)

        try:
            if not self.count:
                await self.app(scope, receive, send_with_id if scope["type"] == "http" else send)
                return
            if scope["type"] == "websocket":
                # nothing to add to a websocket's messages: every frame goes straight out
                metrics.WEBSOCKETS.inc()
                try:
                    await self.app(scope, receive, send)
                finally:
                    metrics.WEBSOCKETS.dec()
                return
            route = route_label(scope.get("path", ""))
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                metrics.child(metrics.HTTP_REQUESTS, route, f"{status[0] // 100}xx").inc()
        finally:
            request_id.reset(token)
