"""Tokens are checked against the database: a token whose organization, operator or customer
is gone (or changed) is refused, and revoked tokens stop working at once in this process."""

from __future__ import annotations

import uuid

import pytest

from app.accounts import access
from app.accounts.models import Operator, Organization, Role, TokenSubject
from app.audit.models import AuditEntry
from app.customers.models import Customer
from tests.graphql.client import SETTINGS, error_codes, gql, token, tokens_of
from tests.support.factories import Tenant, make_tenant

VIEWER = "{ viewer { subject role } }"
REVOKE = "mutation($s: String!) { revokeTokens(subject: $s) { subject version } }"


@pytest.fixture(autouse=True)
def fresh_cache() -> None:
    access.CACHE.entries.clear()


async def refused(bearer: str, reason: str) -> None:
    body = await gql(VIEWER, token=bearer)
    assert error_codes(body) == ["UNAUTHENTICATED"], body
    assert reason in body["errors"][0]["message"], body


async def test_a_token_for_no_operator_is_refused(tenant: Tenant) -> None:
    ghost = token(tenant.id, Role.ADMIN, subject="ghost@nowhere.test")
    await refused(ghost, "ghost@nowhere.test is not an active operator")


async def test_an_operator_deactivated_or_demoted_is_refused(tenant: Tenant) -> None:
    admin = token(tenant.id, Role.ADMIN, subject=tenant.admin.subject)
    assert "errors" not in await gql(VIEWER, token=admin)
    await Operator.filter(id=tenant.admin_operator.id).update(role=Role.CSM)
    access.CACHE.forget(str(tenant.id), tenant.admin.subject)
    await refused(admin, "is no longer ADMIN")
    await Operator.filter(id=tenant.admin_operator.id).update(role=Role.ADMIN, active=False)
    access.CACHE.forget(str(tenant.id), tenant.admin.subject)
    await refused(admin, "is not an active operator")


async def test_a_deleted_customer_or_organization_is_refused() -> None:
    tenant = await make_tenant()
    customer = await tenant.customer()
    tokens = tokens_of(tenant, customer)
    await Customer.filter(id=customer.id).delete()
    await refused(tokens[Role.CUSTOMER], "customer no longer exists")
    await Organization.filter(id=tenant.id).delete()
    await refused(tokens[Role.CSM], "organization no longer exists")
    await refused(token(uuid.uuid4(), Role.ADMIN), "organization no longer exists")


async def test_revoked_tokens_stop_working_and_new_ones_work(tenant: Tenant) -> None:
    customer = await tenant.customer()
    tokens = tokens_of(tenant, customer)
    csm = tokens[Role.CSM]
    assert "errors" not in await gql(VIEWER, token=csm)  # cached as good
    body = await gql(REVOKE, {"s": tenant.csm.subject}, token=tokens[Role.ADMIN])
    assert body["data"]["revokeTokens"] == {"subject": tenant.csm.subject, "version": 1}
    await refused(csm, "revoked")
    fresh = await access.fresh_token(
        SETTINGS, subject=tenant.csm.subject, organization_id=tenant.id, role=Role.CSM
    )
    assert (await gql(VIEWER, token=fresh))["data"]["viewer"]["role"] == "CSM"
    row = await TokenSubject.get(organization_id=tenant.id, subject=tenant.csm.subject)
    assert row.revoked_by == tenant.admin.label
    entry = await AuditEntry.get(organization_id=tenant.id, action="tokens.revoke")
    assert (entry.actor, entry.target_id) == (tenant.admin.subject, tenant.csm.subject)
    assert (entry.before, entry.after) == ({"version": 0}, {"version": 1})


async def test_only_admins_revoke(tenant: Tenant) -> None:
    customer = await tenant.customer()
    tokens = tokens_of(tenant, customer)
    for role in (Role.CSM, Role.CUSTOMER):
        body = await gql(REVOKE, {"s": tenant.admin.subject}, token=tokens[role])
        assert error_codes(body) == ["FORBIDDEN"]
    assert not await TokenSubject.filter(organization_id=tenant.id).exists()
    assert "errors" not in await gql(VIEWER, token=tokens[Role.ADMIN])
