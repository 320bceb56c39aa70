"""Authentication over the real GraphQL API (DESIGN.md, "Tenancy and auth").

Bad credentials of every kind are refused as UNAUTHENTICATED by the production view
(`LiftoffGraphQL`) before anything runs; a good token is accepted.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import jwt
import pytest

from app.customers.models import Customer
from tests.graphql.client import SETTINGS, error_codes, gql
from tests.support.factories import Tenant


def claims(org: uuid.UUID, /, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {
        "sub": "someone@example.com",
        "org": str(org),
        "role": "ADMIN",
        "iss": SETTINGS.jwt_issuer,
        "aud": SETTINGS.jwt_audience,
        "iat": now,
        "exp": now + 3600,
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


SECRET = SETTINGS.resolved_secret_key()
INVALID = "The bearer token is not valid: "
SEND_BEARER = "Send `Authorization: Bearer <token>` (mint one with `liftoff token`)."
USE_BEARER = "Use `Authorization: Bearer <token>`."


def signed(org: uuid.UUID, /, **changes: Any) -> str:
    return "Bearer " + jwt.encode(claims(org, **changes), SECRET, algorithm="HS256")


BAD_CREDENTIALS: dict[str, tuple[Callable[[uuid.UUID], str | None], str]] = {
    "no header": (lambda org: None, SEND_BEARER),
    "empty header": (lambda org: "", SEND_BEARER),
    "basic scheme": (lambda org: "Basic dXNlcjpwYXNz", USE_BEARER),
    "bearer without token": (lambda org: "Bearer", USE_BEARER),
    "token without scheme": (lambda org: jwt.encode(claims(org), SECRET, "HS256"), USE_BEARER),
    "not a jwt": (lambda org: "Bearer not-a-jwt", INVALID + "Not enough segments."),
    "wrong signature": (
        lambda org: "Bearer " + jwt.encode(claims(org), "some-other-secret-" * 3, "HS256"),
        INVALID + "Signature verification failed.",
    ),
    "expired": (
        lambda org: signed(org, exp=int(time.time()) - 60),
        "The token has expired; sign in again.",
    ),
    "wrong aud": (lambda org: signed(org, aud="another-api"), INVALID + "Audience doesn't match."),
    "wrong iss": (lambda org: signed(org, iss="someone-else"), INVALID + "Invalid issuer."),
    "alg none": (
        lambda org: "Bearer " + jwt.encode(claims(org), None, algorithm="none"),
        INVALID + "The specified alg value is not allowed.",
    ),
    "HS512 with the right secret": (
        lambda org: "Bearer " + jwt.encode(claims(org), SECRET, algorithm="HS512"),
        INVALID + "The specified alg value is not allowed.",
    ),
    "no exp": (lambda org: signed(org, exp=None), INVALID + 'Token is missing the "exp" claim.'),
    "no aud": (lambda org: signed(org, aud=None), INVALID + 'Token is missing the "aud" claim.'),
    "no org": (lambda org: signed(org, org=None), INVALID + 'Token is missing the "org" claim.'),
    "unknown role": (lambda org: signed(org, role="ROOT"), INVALID + "'ROOT' is not a valid Role."),
    "customer without cid": (
        lambda org: signed(org, role="CUSTOMER"),
        "A CUSTOMER token must carry a `cid` claim.",
    ),
    "customer with malformed cid": (
        lambda org: signed(org, role="CUSTOMER", cid="nope"),
        INVALID + "badly formed hexadecimal UUID string.",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_CREDENTIALS))
async def test_bad_credentials_are_unauthenticated(tenant: Tenant, case: str) -> None:
    make, message = BAD_CREDENTIALS[case]
    header = make(tenant.id)
    query = "{ viewer { subject role } }"
    body = await gql(query, token=None, authorization=header)
    assert error_codes(body) == ["UNAUTHENTICATED"], body
    assert body["errors"][0]["message"] == message
    assert body["data"] is None

    email = f"intruder-{uuid.uuid4().hex[:8]}@example.com"
    body = await gql(
        'mutation($e: String!) { createCustomer(input: {email: $e, name: "Intruder"}) { id } }',
        {"e": email},
        token=None,
        authorization=header,
    )
    assert error_codes(body) == ["UNAUTHENTICATED"], body
    assert not await Customer.filter(email=email).exists()


async def test_a_good_token_is_accepted(tenant: Tenant) -> None:
    header = signed(tenant.id, sub=tenant.admin.subject)
    body = await gql("{ viewer { subject role } }", token=None, authorization=header)
    assert body == {"data": {"viewer": {"subject": tenant.admin.subject, "role": "ADMIN"}}}
    lower = header.replace("Bearer ", "bearer ")
    body = await gql("{ viewer { role } }", token=None, authorization=lower)
    assert body == {"data": {"viewer": {"role": "ADMIN"}}}
