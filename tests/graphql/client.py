"""Talk to the real GraphQL API in-process, as a given caller.

The ASGI view is `app.asgi.LiftoffGraphQL` (what `create_app` mounts at `/graphql`), driven
through `httpx.ASGITransport`; it runs on the database the `db` fixture already initialised,
so no lifespan is needed. Tokens are minted with the same Settings the view checks them with.
"""

from __future__ import annotations

import uuid
from functools import lru_cache
from typing import Any

import httpx

from app.accounts.models import Role
from app.accounts.tokens import token_for
from app.asgi import LiftoffGraphQL
from app.customers.models import Customer
from app.settings import Settings
from tests.support.factories import OPERATORS, Tenant

SETTINGS = Settings(
    secret_key="liftoff-graphql-tests-" + "0123456789abcdef" * 4,
    jwt_issuer="liftoff-tests",
    jwt_audience="liftoff-tests-api",
    graphiql=False,
    max_query_depth=12,
    max_aliases=30,
    max_tokens=2000,
)
"""The settings of the app under test (explicit, so the environment cannot change them)."""

SETTINGS_MUTATION = """mutation($input: WorkflowSettingsInput!) {
  updateWorkflowSettings(input: $input) { id paused remindersEnabled version } }"""
"""`updateWorkflowSettings` with the whole input as one variable, answering the new settings."""


@lru_cache(maxsize=1)
def graphql_app() -> LiftoffGraphQL:
    """The GraphQL view, built once: schema, limits and error handling as in production."""
    return LiftoffGraphQL(SETTINGS)


def token(
    organization_id: uuid.UUID,
    role: Role,
    *,
    customer_id: uuid.UUID | None = None,
    subject: str | None = None,
) -> str:
    """A valid bearer token for this identity, signed with the app's secret."""
    return token_for(
        SETTINGS,
        subject=subject
        or OPERATORS.get(organization_id, {}).get(role)
        or f"{role.value.lower()}-{uuid.uuid4().hex[:8]}@example.com",
        organization_id=organization_id,
        role=role,
        customer_id=customer_id,
    )


def tokens_of(tenant: Tenant, customer: Customer) -> dict[Role, str]:
    """A token per role in `tenant`: its admin, its CSM, and `customer` itself."""
    return {
        Role.ADMIN: token(tenant.id, Role.ADMIN, subject=tenant.admin.subject),
        Role.CSM: token(tenant.id, Role.CSM, subject=tenant.csm.subject),
        Role.CUSTOMER: token(
            tenant.id, Role.CUSTOMER, customer_id=customer.id, subject=customer.email
        ),
    }


async def post(body: Any, *, authorization: str | None = None) -> httpx.Response:
    """POST `body` as JSON to the GraphQL view with the given raw Authorization header."""
    headers = {"authorization": authorization} if authorization is not None else {}
    transport = httpx.ASGITransport(app=graphql_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://liftoff.test") as client:
        return await client.post("/", json=body, headers=headers)


async def gql(
    query: str,
    variables: dict[str, Any] | None = None,
    *,
    token: str | None,
    authorization: str | None = None,
    operation_name: str | None = None,
) -> dict[str, Any]:
    """Run one operation and return the JSON body.

    `token=None` sends no Authorization header; `authorization` sends that raw header value
    instead. Every error of every response must carry `extensions.code`: checked here, so
    each test checks it.
    """
    header = authorization if authorization is not None else (f"Bearer {token}" if token else None)
    payload: dict[str, Any] = {"query": query, "variables": variables or {}}
    if operation_name is not None:
        payload["operationName"] = operation_name
    response = await post(payload, authorization=header)
    assert response.headers["content-type"].startswith("application/json"), response.text
    body: dict[str, Any] = response.json()
    for error in body.get("errors") or []:
        code = (error.get("extensions") or {}).get("code")
        assert isinstance(code, str) and code, f"error without extensions.code: {error}"
        assert error.get("message"), f"error without a message: {error}"
    return body


def error_codes(body: dict[str, Any]) -> list[str]:
    """The `extensions.code` of each error of a response, in order."""
    return [e["extensions"]["code"] for e in body.get("errors") or []]
