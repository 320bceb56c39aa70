"""The `/metrics` endpoint: only for allowed client networks or a bearer token."""

from __future__ import annotations

import hmac
import ipaddress
from typing import Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from app.ops import metrics
from app.settings import Settings


def allowed(request: Request, settings: Settings) -> bool:
    """True for a scraper from an allowed network, or one sending the metrics token."""
    token = settings.metrics_token
    header = request.headers.get("authorization", "")
    if token and hmac.compare_digest(header.encode(), f"Bearer {token}".encode()):
        return True
    host = request.client.host if request.client else None
    if not host:
        return False
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(net, strict=False) for net in settings.metrics_allow)


def metrics_endpoint(settings: Settings) -> Any:
    """The Prometheus scrape handler (404 for everyone else, so it is not advertised)."""

    async def scrape(request: Request) -> Response:
        if not settings.metrics or not allowed(request, settings):
            return PlainTextResponse("Not Found", status_code=404)
        return Response(metrics.exposition(), media_type=metrics.CONTENT_TYPE_LATEST)

    return scrape
