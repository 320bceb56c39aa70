"""Response headers every answer carries: no sniffing, no framing, no referrer, and no
caching of API answers (customer data); plus CORS for the allowed origins, and how a
request's header is read from its ASGI scope."""

from __future__ import annotations

from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.types import Scope

ALWAYS = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
)
NO_FRAMES = (b"x-frame-options", b"DENY")
"""Unless the answer's own Content-Security-Policy says who may frame it (embeddable pages)."""
NO_STORE = (b"cache-control", b"no-store")
_DECIDING = frozenset({*(name for name, _ in ALWAYS), b"content-security-policy", b"cache-control"})
"""The names whose presence in an answer changes what `secured` adds."""
_ALL = (*ALWAYS, NO_FRAMES, NO_STORE)


def secured(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """`headers` of an HTTP answer with `ALWAYS` added, `X-Frame-Options: DENY` unless the
    answer's own Content-Security-Policy says who may frame it, and `Cache-Control: no-store`
    unless it sets its own caching (static assets keep theirs). Extends `headers`."""
    names = {name.lower() for name, _ in headers}
    if names.isdisjoint(_DECIDING):  # most answers (every GraphQL one): all of them
        headers += _ALL
        return headers
    headers += [h for h in ALWAYS if h[0] not in names]
    if b"content-security-policy" not in names:
        headers.append(NO_FRAMES)
    if b"cache-control" not in names:
        headers.append(NO_STORE)
    return headers


def middleware(allowed_origins: list[str]) -> list[Middleware]:
    """CORS when origins are allowed (preflight answered here). The security headers are
    added by `app.ops.middleware.RequestContext`, on the way out of every HTTP answer."""
    if not allowed_origins:
        return []
    return [
        Middleware(
            CORSMiddleware,
            allow_origins=allowed_origins,
            allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key"],
            max_age=600,
        )
    ]


def request_header(scope: Scope, name: bytes) -> str | None:
    """The first value of the header `name` (lower case, as ASGI names arrive) of a request
    or websocket, as Starlette's `Headers.get` reads it, without building a `Headers`."""
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")  # type: ignore[no-any-return]
    return None
