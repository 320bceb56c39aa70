"""The benchmarks' tenant (an organization, its customers and their tokens) and the
`updateTask PROGRESS` requests both benchmarks send as those customers."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx

PROGRESS_TASK = "verify_email"


@dataclass
class Seeded:
    """The bench's tenant: a CSM token (dashboards) and each customer's id and CUSTOMER token."""

    csm_token: str
    customers: list[tuple[str, str]]


async def seed(url: str, secret: str, customers: int, *, label: str = "bench") -> Seeded:
    """Migrate; an org with the default template and customers whose first task is running."""
    from app.accounts.models import Operator, Role
    from app.accounts.tokens import token_for
    from app.customers.service import NewCustomer, create_customer
    from app.db import close_db, init_db, migrate, transaction
    from app.onboarding import service as onboarding
    from app.onboarding.states import TaskAction
    from app.onboarding.templates import open_organization
    from app.settings import Settings

    await migrate(url)
    await close_db()
    settings = Settings(secret_key=secret)

    def token(subject: str, org: uuid.UUID, role: Role, customer: uuid.UUID | None = None) -> str:
        return token_for(
            settings,
            subject=subject,
            organization_id=org,
            role=role,
            customer_id=customer,
            ttl=timedelta(hours=6),
        )

    await init_db(url)
    try:
        slug = f"{label}-{uuid.uuid4().hex[:8]}"
        async with transaction():
            new = await open_organization(
                name="Bench",
                slug=slug,
                admin_email=f"admin@{slug}.test",
                admin_name="Admin",
                created_by="bench",
            )
        org, admin_viewer = new.organization, new.viewer
        await Operator.create(organization=org, email=f"csm@{slug}.test", name="CSM", role=Role.CSM)
        made: list[tuple[str, str]] = []
        for i in range(customers):
            async with transaction():
                row = await create_customer(
                    admin_viewer,
                    NewCustomer(email=f"c{i}@{slug}.test", name=f"Customer {i}", company="Bench"),
                )
                await onboarding.update_task(
                    admin_viewer,
                    action=TaskAction.START,
                    task_key=PROGRESS_TASK,
                    customer_id=str(row.id),
                )
            made.append((str(row.id), token(row.email, org.id, Role.CUSTOMER, row.id)))
        return Seeded(csm_token=token(f"csm@{slug}.test", org.id, Role.CSM), customers=made)
    finally:
        await close_db()


def bearer_headers(token: str) -> dict[str, str]:
    """Headers of a JSON GraphQL request as the holder of `token`."""
    return {"authorization": f"Bearer {token}", "content-type": "application/json"}


def progress_variables(customer_id: str, percent: int) -> dict[str, Any]:
    """Variables of `updateTask`: PROGRESS to `percent` on the customer's running task."""
    return {
        "input": {
            "action": "PROGRESS",
            "taskKey": PROGRESS_TASK,
            "customerId": customer_id,
            "progress": percent,
        }
    }


async def post_graphql(
    client: httpx.AsyncClient, body: bytes, headers: dict[str, str]
) -> str | None:
    """POST `body` to the client's /graphql: None when answered without errors (HTTP 200 and
    no "errors" in the body), else a one-line account of what went wrong."""
    import httpx  # at runtime only here: fan-out client processes import this module too

    try:
        response = await client.post("/graphql", content=body, headers=headers)
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}"
    return answer_error(response.status_code, response.content)


def answer_error(status: int, content: bytes) -> str | None:
    """None for an answer without errors (HTTP 200 and no "errors" in the body), else a
    one-line account of what went wrong."""
    if status != 200 or b'"errors"' in content:
        return f"HTTP {status}: {content[:300]!r}"
    return None
