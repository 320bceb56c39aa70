"""Customers named only by the organization's own id, created on first sight (ingestion's
`createMissingCustomers`), each with its default workflow."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable
from datetime import datetime

from tortoise.connection import get_connection

from app.customers.models import Customer
from app.events import outbox
from app.kit.tenancy import Tenant, scoped
from app.onboarding import service as onboarding
from app.onboarding.templates import default_template

MAX_EXTERNAL_ID = 200

_INSERT = """INSERT INTO customer (id, organization_id, external_id, email, name, company,
    user_type, acquisition_channel, tags, signed_up_at, created_at)
SELECT gen_random_uuid(), $1, x, e, x, NULL, 'standard', 'direct', '[]'::jsonb, $4, $4
FROM unnest($2::varchar[], $3::varchar[]) AS u(x, e) ORDER BY x
ON CONFLICT DO NOTHING
RETURNING id"""


def placeholder_email(external_id: str) -> str:
    """A stable address that cannot receive mail, for a customer known only by its id."""
    return f"ext-{hashlib.sha256(external_id.encode()).hexdigest()[:24]}@customers.invalid"


async def ensure_customers(
    tenant: Tenant, external_ids: Iterable[str], *, actor: str, now: datetime
) -> dict[str, uuid.UUID]:
    """The tenant's customers for `external_ids`, creating the missing ones with their
    default workflow (in the caller's transaction). A concurrent caller creating the same
    id waits for the first and then finds its row: never a failure, never a duplicate."""
    wanted = sorted({x for x in external_ids if x and len(x) <= MAX_EXTERNAL_ID})
    if not wanted:
        return {}
    template = await default_template(tenant)
    rows = await get_connection("default").execute_query_dict(
        _INSERT, [tenant.organization_id, wanted, [placeholder_email(x) for x in wanted], now]
    )
    if rows:
        created = await Customer.filter(id__in=[r["id"] for r in rows]).order_by("id")
        for customer in created:
            _, events = await onboarding.start_workflow(
                customer=customer, template=template, now=now
            )
            born = (
                "customer.created",
                {"customerId": str(customer.id), "name": customer.name, "email": customer.email},
            )
            await outbox.record(
                organization_id=tenant.organization_id,
                customer_id=customer.id,
                events=[born, *events],
                actor=actor,
            )
    found = (
        await scoped(Customer, tenant)
        .filter(external_id__in=wanted)
        .values_list("external_id", "id")
    )
    return {str(x): cid for x, cid in found}
