"""What the API shows of itself: introspection and suggestions by LIFTOFF_INTROSPECTION, CORS
for allowed origins only (with a correct preflight), and security headers on every answer."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from app.accounts.models import Role
from app.asgi import create_app
from tests.graphql.client import SETTINGS, tokens_of
from tests.support.factories import Tenant

SCHEMA = "{ __schema { queryType { name } } }"
TYPO = "{ viewr { role } }"
ORIGIN = "https://app.example.com"


async def ask(
    query: str, *, token: str | None = None, **settings: Any
) -> tuple[httpx.Response, dict[str, Any]]:
    app = create_app(SETTINGS.model_copy(update=settings))
    headers = {"authorization": f"Bearer {token}"} if token else {}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://liftoff.test") as client:
        response = await client.post("/graphql", json={"query": query}, headers=headers)
    return response, response.json()


@pytest.mark.parametrize(
    ("mode", "role", "allowed"),
    [
        ("on", None, True),
        ("off", Role.ADMIN, False),
        ("admin", None, False),
        ("admin", Role.CSM, False),
        ("admin", Role.ADMIN, True),
    ],
)
async def test_introspection_and_suggestions_follow_the_switch(
    tenant: Tenant, mode: str, role: Role | None, allowed: bool
) -> None:
    token = tokens_of(tenant, await tenant.customer())[role] if role else None
    _, body = await ask(SCHEMA, token=token, introspection=mode)
    if allowed:
        assert body["data"]["__schema"]["queryType"]["name"] == "Query", body
    else:
        assert body["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
        assert "Introspection is disabled" in body["errors"][0]["message"]
    _, body = await ask(TYPO, token=token, introspection=mode)
    assert ("Did you mean" in body["errors"][0]["message"]) is allowed, body
    _, body = await ask("{ __typename }", token=token, introspection=mode)
    assert body == {"data": {"__typename": "Query"}}


async def test_every_answer_carries_security_headers() -> None:
    response, _ = await ask("{ __typename }")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["cache-control"] == "no-store"
    assert "server" not in response.headers


async def test_cors_allows_only_the_listed_origins() -> None:
    app = create_app(SETTINGS.model_copy(update={"allowed_origins": [ORIGIN]}))
    transport = httpx.ASGITransport(app=app)
    preflight = {
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorization, content-type",
    }
    async with httpx.AsyncClient(transport=transport, base_url="http://liftoff.test") as client:
        ok = await client.options("/graphql", headers={"origin": ORIGIN, **preflight})
        assert ok.status_code == 200
        assert ok.headers["access-control-allow-origin"] == ORIGIN
        assert "POST" in ok.headers["access-control-allow-methods"]
        assert "authorization" in ok.headers["access-control-allow-headers"].lower()
        evil = await client.options(
            "/graphql", headers={"origin": "https://evil.test", **preflight}
        )
        assert evil.status_code == 400
        assert "access-control-allow-origin" not in evil.headers
        post = await client.post(
            "/graphql", json={"query": "{ __typename }"}, headers={"origin": ORIGIN}
        )
        assert post.headers["access-control-allow-origin"] == ORIGIN


def test_allowed_origins_read_from_a_comma_list(monkeypatch: pytest.MonkeyPatch) -> None:
    from app.settings import Settings

    monkeypatch.setenv("LIFTOFF_ALLOWED_ORIGINS", f"{ORIGIN}/, https://b.example.com")
    assert Settings().allowed_origins == [ORIGIN, "https://b.example.com"]
    monkeypatch.setenv("DATABASE_URL", "postgres://x@y/z")
    assert Settings().introspection_mode == "admin"
    monkeypatch.delenv("DATABASE_URL")
    assert Settings().introspection_mode == "on"


async def test_pages_that_say_who_may_frame_them_are_not_denied_framing() -> None:
    transport = httpx.ASGITransport(app=create_app(SETTINGS))
    async with httpx.AsyncClient(transport=transport, base_url="http://liftoff.test") as client:
        checklist = await client.get("/checklist")
    assert "frame-ancestors" in checklist.headers["content-security-policy"]
    assert "x-frame-options" not in checklist.headers
    assert checklist.headers["cache-control"] == "no-cache"  # the page's own caching stays
