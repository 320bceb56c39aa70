"""Password and link sign-in over the real GraphQL view and PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest

from app.accounts.credentials import OperatorPassword, SignInLink, SignInThrottle
from app.accounts.models import Operator, Role
from app.accounts.signin import create_link, set_password
from app.audit.models import AuditEntry
from app.db import transaction
from app.kit.clock import utcnow
from tests.graphql.client import error_codes, gql, graphql_app, token
from tests.support.factories import Tenant

LOGIN = """mutation($e: String!, $p: String!, $o: String) {
  login(email: $e, password: $p, organization: $o) {
    token expiresAt subject role organization { slug } customerId } }"""
REDEEM = """mutation($s: String!) { redeemSignInLink(secret: $s) {
  token subject role organization { slug } customerId } }"""
PASSWORD = "correct horse battery staple"


def new_address() -> str:
    """A client address of its own, so the per-address counter starts at zero."""
    return f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"


async def call(query: str, variables: dict[str, Any], *, address: str) -> dict[str, Any]:
    transport = httpx.ASGITransport(app=graphql_app(), client=(address, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://liftoff.test") as client:
        response = await client.post("/", json={"query": query, "variables": variables})
    body: dict[str, Any] = response.json()
    return body


async def operator_with_password(tenant: Tenant) -> Operator:
    operator = tenant.admin_operator
    async with transaction():
        await set_password(operator=operator, password=PASSWORD)
    return operator


async def test_a_password_signs_in_with_a_short_lived_token(tenant: Tenant) -> None:
    operator = await operator_with_password(tenant)
    body = await call(LOGIN, {"e": operator.email.upper(), "p": PASSWORD}, address=new_address())
    signed = body["data"]["login"]
    assert (signed["subject"], signed["role"], signed["customerId"]) == (
        operator.email,
        "ADMIN",
        None,
    )
    assert signed["organization"] == {"slug": tenant.org.slug}
    me = await gql("{ viewer { subject role } }", token=signed["token"])
    assert me == {"data": {"viewer": {"subject": operator.email, "role": "ADMIN"}}}
    stored = await OperatorPassword.get(operator_id=operator.id)
    assert stored.hash.startswith("$argon2id$") and PASSWORD not in stored.hash


async def test_a_wrong_password_and_an_unknown_email_get_the_same_answer(tenant: Tenant) -> None:
    operator = await operator_with_password(tenant)
    address = new_address()
    wrong = await call(LOGIN, {"e": operator.email, "p": "not the password"}, address=address)
    unknown = await call(LOGIN, {"e": "nobody@nowhere.test", "p": PASSWORD}, address=address)
    for body in (wrong, unknown):
        assert error_codes(body) == ["UNAUTHENTICATED"]
        assert body["errors"][0]["message"] == "Wrong email or password."
        assert body["data"] is None


async def test_failures_are_slowed_then_locked_per_account(tenant: Tenant) -> None:
    operator = await operator_with_password(tenant)
    key = f"account:{operator.email}"
    messages = []
    for _ in range(8):
        # Each attempt comes from a new address, after any wait the previous one imposed.
        await SignInThrottle.filter(key=key).update(last_failure_at=utcnow() - timedelta(minutes=2))
        body = await call(LOGIN, {"e": operator.email, "p": "guess"}, address=new_address())
        messages.append(body["errors"][0]["message"])
    assert messages[0] == "Wrong email or password."
    assert messages[3] == "Wrong email or password."
    assert messages[4] == "Wrong email or password. 3 attempts left before a lock."
    assert messages[6] == "Wrong email or password. 1 attempt left before a lock."
    assert messages[7] == "Wrong email or password. The account is now locked for 15 minutes."
    # Even the right password is refused while locked, and says for how long.
    body = await call(LOGIN, {"e": operator.email, "p": PASSWORD}, address=new_address())
    assert error_codes(body) == ["RATE_LIMITED"]
    assert body["errors"][0]["message"] == (
        "Too many failed sign-ins: this account is locked; try again in 15 minutes."
    )
    assert body["errors"][0]["extensions"]["retry_after_seconds"] > 890


async def test_quick_retries_after_three_failures_are_told_to_wait(tenant: Tenant) -> None:
    operator = await operator_with_password(tenant)
    address = new_address()
    for _ in range(3):
        body = await call(LOGIN, {"e": operator.email, "p": "guess"}, address=address)
        assert error_codes(body) == ["UNAUTHENTICATED"]
    # The next attempt comes at once (however slow this machine was to hash the guesses).
    key = f"account:{operator.email}"
    await SignInThrottle.filter(key=key).update(last_failure_at=utcnow())
    body = await call(LOGIN, {"e": operator.email, "p": PASSWORD}, address=address)
    assert error_codes(body) == ["RATE_LIMITED"]
    assert "slowed down; try again in 1 second" in body["errors"][0]["message"]
    # Once the wait is over the right password works and clears the account's failures.
    await asyncio.sleep(1.1)
    body = await call(LOGIN, {"e": operator.email, "p": PASSWORD}, address=address)
    assert body["data"]["login"]["role"] == "ADMIN", body
    assert (await SignInThrottle.get(key=f"account:{operator.email}")).failures == 0


async def test_one_address_trying_many_accounts_is_slowed(tenant: Tenant) -> None:
    address = new_address()
    for n in range(10):
        body = await call(LOGIN, {"e": f"spray{n}@nowhere.test", "p": "guess"}, address=address)
        assert error_codes(body) == ["UNAUTHENTICATED"]
    body = await call(LOGIN, {"e": "spray99@nowhere.test", "p": "guess"}, address=address)
    assert error_codes(body) == ["RATE_LIMITED"]
    assert "this address is slowed down" in body["errors"][0]["message"]


async def test_concurrent_failures_are_all_counted(tenant: Tenant) -> None:
    operator = await operator_with_password(tenant)
    await asyncio.gather(
        *(
            call(LOGIN, {"e": operator.email, "p": f"guess {n}"}, address=new_address())
            for n in range(3)
        )
    )
    assert (await SignInThrottle.get(key=f"account:{operator.email}")).failures == 3


async def link_for(tenant: Tenant, email: str) -> str:
    async with transaction():
        secret, _ = await create_link(organization=tenant.org, email=email, created_by="test")
    return secret


async def test_a_link_signs_in_once(tenant: Tenant) -> None:
    secret = await link_for(tenant, tenant.admin_operator.email)
    first = await call(REDEEM, {"s": secret}, address=new_address())
    assert first["data"]["redeemSignInLink"]["role"] == "ADMIN"
    again = await call(REDEEM, {"s": secret}, address=new_address())
    assert error_codes(again) == ["UNAUTHENTICATED"]
    assert again["errors"][0]["message"] == (
        "This sign-in link has already been used; ask for a new one."
    )


async def test_two_browsers_racing_for_one_link_sign_in_once(tenant: Tenant) -> None:
    secret = await link_for(tenant, tenant.admin_operator.email)
    bodies = await asyncio.gather(
        *(call(REDEEM, {"s": secret}, address=new_address()) for _ in range(4))
    )
    assert sorted(error_codes(b) == [] for b in bodies) == [False, False, False, True]


async def test_a_customer_link_gives_a_customer_token(tenant: Tenant) -> None:
    customer = await tenant.customer()
    secret = await link_for(tenant, customer.email)
    body = await call(REDEEM, {"s": secret}, address=new_address())
    signed = body["data"]["redeemSignInLink"]
    assert (signed["role"], signed["customerId"]) == ("CUSTOMER", str(customer.id))


async def test_expired_and_unknown_links_are_refused(tenant: Tenant) -> None:
    secret = await link_for(tenant, tenant.admin_operator.email)
    await SignInLink.filter(organization_id=tenant.id).update(expires_at=utcnow())
    expired = await call(REDEEM, {"s": secret}, address=new_address())
    assert expired["errors"][0]["message"] == (
        "This sign-in link has expired (links last 15 minutes); ask for a new one."
    )
    unknown = await call(REDEEM, {"s": "made-up"}, address=new_address())
    assert unknown["errors"][0]["message"] == "This sign-in link is not valid; ask for a new one."


CREATE = """mutation($i: CreateOperatorInput!) { createOperator(input: $i) { id email role } }"""


async def test_an_admin_adds_a_csm_who_signs_in(tenant: Tenant) -> None:
    admin = token(tenant.id, Role.ADMIN, subject=tenant.admin.subject)
    email = f"new-{uuid.uuid4().hex[:6]}@example.com"
    body = await gql(
        CREATE,
        {"i": {"email": email, "name": "New", "role": "CSM", "password": PASSWORD}},
        token=admin,
    )
    assert body["data"]["createOperator"]["role"] == "CSM"
    signed = await call(LOGIN, {"e": email, "p": PASSWORD}, address=new_address())
    assert signed["data"]["login"]["role"] == "CSM"
    again = await gql(CREATE, {"i": {"email": email, "name": "x", "role": "CSM"}}, token=admin)
    assert error_codes(again) == ["CONFLICT"]


@pytest.mark.parametrize(
    ("role", "password", "code"),
    [("CSM", PASSWORD, "FORBIDDEN"), ("ADMIN", "short", "VALIDATION_FAILED")],
)
async def test_refused_operator_creation_writes_nothing(
    tenant: Tenant, role: str, password: str, code: str
) -> None:
    email = f"refused-{uuid.uuid4().hex[:6]}@example.com"
    body = await gql(
        CREATE,
        {"i": {"email": email, "name": "R", "role": "CSM", "password": password}},
        token=token(
            tenant.id, Role(role), subject={"CSM": tenant.csm, "ADMIN": tenant.admin}[role].subject
        ),
    )
    assert error_codes(body) == [code]
    assert not await Operator.filter(email=email).exists()


ISSUE = """mutation($c: ID!, $m: Int!) { issueCustomerToken(customerId: $c, ttlMinutes: $m) {
  token role customerId expiresAt } }"""


async def test_an_admin_issues_a_customer_token_for_an_embedded_checklist(tenant: Tenant) -> None:
    customer = await tenant.customer()
    body = await gql(ISSUE, {"c": str(customer.id), "m": 5}, token=token(tenant.id, Role.ADMIN))
    issued = body["data"]["issueCustomerToken"]
    assert (issued["role"], issued["customerId"]) == ("CUSTOMER", str(customer.id))
    me = await gql("{ workflow { customer { id } } }", token=issued["token"])
    assert me["data"]["workflow"]["customer"]["id"] == str(customer.id)
    csm = await gql(ISSUE, {"c": str(customer.id), "m": 5}, token=token(tenant.id, Role.CSM))
    assert error_codes(csm) == ["FORBIDDEN"]
    long = await gql(ISSUE, {"c": str(customer.id), "m": 5000}, token=token(tenant.id, Role.ADMIN))
    assert error_codes(long) == ["VALIDATION_FAILED"]


async def test_sign_ins_and_operator_changes_are_audited(tenant: Tenant) -> None:
    operator = await operator_with_password(tenant)
    await call(LOGIN, {"e": operator.email, "p": "guess"}, address="10.9.9.9")
    await call(LOGIN, {"e": operator.email, "p": PASSWORD}, address="10.9.9.9")
    await call(REDEEM, {"s": await link_for(tenant, operator.email)}, address="10.9.9.9")
    email = f"audited-{uuid.uuid4().hex[:6]}@example.com"
    await gql(
        CREATE,
        {"i": {"email": email, "name": "A", "role": "CSM"}},
        token=token(tenant.id, Role.ADMIN),
    )
    entries = await AuditEntry.filter(
        organization_id=tenant.id, action__not="template.install"
    ).order_by("id")
    actions = [(e.action, e.actor) for e in entries]
    assert actions[:3] == [
        ("signin.failed", operator.email),
        ("signin.password", operator.email),
        ("signin.link", operator.email),
    ]
    assert actions[3][0] == "operator.created"
    assert entries[3].after["email"] == email and entries[0].after["address"] == "10.9.9.9"
