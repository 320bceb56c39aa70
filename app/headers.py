"""Response headers every answer carries: no sniffing, no framing, no referrer, and no
caching of API answers (customer data); plus CORS for the allowed origins."""

from __future__ import annotations

from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

ALWAYS = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
)
NO_FRAMES = (b"x-frame-options", b"DENY")
"""Unless the answer's own Content-Security-Policy says who may frame it (embeddable pages)."""
NO_STORE = (b"cache-control", b"no-store")


class SecurityHeaders:
    """Adds `ALWAYS` to every HTTP answer, and `Cache-Control: no-store` where the answer
    does not set its own caching (static assets keep theirs)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {name.lower() for name, _ in headers}
                headers += [h for h in ALWAYS if h[0] not in names]
                if b"content-security-policy" not in names:
                    headers.append(NO_FRAMES)
                if b"cache-control" not in names:
                    headers.append(NO_STORE)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def middleware(allowed_origins: list[str]) -> list[Middleware]:
    """Security headers, and CORS when origins are allowed (preflight answered here)."""
    stack = [Middleware(SecurityHeaders)]
    if allowed_origins:
        stack.append(
            Middleware(
                CORSMiddleware,
                allow_origins=allowed_origins,
                allow_methods=["GET", "POST", "OPTIONS"],
                allow_headers=["Authorization", "Content-Type", "Idempotency-Key"],
                max_age=600,
            )
        )
    return stack
