"""Customer use cases: sign one up (starting its workflow), read and list them."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from tortoise.exceptions import IntegrityError

from app.accounts.models import Role
from app.accounts.service import check_email
from app.accounts.viewer import Viewer
from app.analytics.rules import OUTCOMES, StepOutcome
from app.customers import listing
from app.customers.listing import CustomerPage, HealthFilter, Order
from app.customers.models import Customer
from app.errors import Conflict, NotFound, ValidationFailed
from app.events import outbox
from app.kit.clock import utcnow
from app.kit.tenancy import scoped
from app.kit.text import aware, optional_text, text
from app.onboarding import service as onboarding
from app.onboarding.states import WorkflowStatus
from app.onboarding.templates import default_template, get_template


@dataclass(frozen=True)
class NewCustomer:
    """What it takes to sign a customer up."""

    email: str
    name: str
    company: str | None = None
    external_id: str | None = None
    user_type: str = "standard"
    acquisition_channel: str = "direct"
    signed_up_at: datetime | None = None
    template_id: uuid.UUID | None = None


@dataclass(frozen=True)
class CustomerFilter:
    """Filters of the customers list; analytics figures hand theirs out as drill-downs."""

    user_type: str | None = None
    acquisition_channel: str | None = None
    workflow_status: WorkflowStatus | None = None
    search: str | None = None
    signed_up_from: date | None = None
    signed_up_to: date | None = None
    template_version: int | None = None
    stage_key: str | None = None
    task_key: str | None = None
    outcome: StepOutcome | None = None
    completed_within_weeks: int | None = None
    active: bool | None = None
    health_level: str | None = None
    health_below: float | None = None
    health_above: float | None = None


def _label(value: str, field: str) -> str:
    return text(value, field=field, max_length=64).lower()


async def create_customer(viewer: Viewer, data: NewCustomer) -> Customer:
    """Sign a customer up and start its workflow on the default (or given) template."""
    viewer.require(Role.ADMIN, Role.CSM)
    name = text(data.name, field="name", max_length=200)
    company = optional_text(data.company, field="company", max_length=200)
    external_id = optional_text(data.external_id, field="externalId", max_length=200)
    user_type = _label(data.user_type, "userType")
    acquisition_channel = _label(data.acquisition_channel, "acquisitionChannel")
    now = utcnow()
    signed_up_at = aware(data.signed_up_at, field="signedUpAt") if data.signed_up_at else now
    if signed_up_at > now:
        raise ValidationFailed("`signedUpAt` cannot be in the future.", field="signedUpAt")
    email = check_email(data.email)
    if await scoped(Customer, viewer).filter(email=email).exists():
        raise Conflict(f"A customer with email {email} already exists.", field="email")
    template = (
        await get_template(viewer, data.template_id)
        if data.template_id
        else await default_template(viewer)
    )
    try:
        customer = await Customer.create(
            organization_id=viewer.organization_id,
            email=email,
            name=name,
            company=company,
            external_id=external_id,
            user_type=user_type,
            acquisition_channel=acquisition_channel,
            signed_up_at=signed_up_at,
        )
    except IntegrityError:
        raise Conflict("A customer with this email or external id already exists.") from None
    _, events = await onboarding.start_workflow(customer=customer, template=template, now=now)
    created = (
        "customer.created",
        {"customerId": str(customer.id), "name": customer.name, "email": email},
    )
    await outbox.record(
        organization_id=viewer.organization_id,
        customer_id=customer.id,
        events=[created, *events],
        actor=viewer.label,
    )
    return customer


async def get_customer(viewer: Viewer, customer_id: str | uuid.UUID | None) -> Customer:
    """One customer the viewer may see, or NOT_FOUND."""
    cid = viewer.customer_scope(customer_id)
    customer = await scoped(Customer, viewer).get_or_none(id=cid)
    if customer is None:
        raise NotFound(f"No customer with id {cid}.", customer=str(cid))
    return customer


def _health_filter(where: CustomerFilter) -> HealthFilter:
    for name, bound in (("healthBelow", where.health_below), ("healthAbove", where.health_above)):
        if bound is not None and not 0 <= bound <= 100:
            raise ValidationFailed(f"`{name}` must be a score from 0 to 100.", field=name)
    return HealthFilter(
        level=where.health_level, below=where.health_below, above=where.health_above
    )


async def list_customers(
    viewer: Viewer,
    *,
    first: int | None,
    after: str | None,
    where: CustomerFilter,
    order: Order = Order.CREATED_ASC,
    workflows: bool = False,
) -> CustomerPage:
    """A page of the organization's customers (operators only) in the given order; counting
    is left to the caller, who may not need it. With `workflows`, each customer's workflow
    is read in the page's statement."""
    viewer.require(Role.ADMIN, Role.CSM)
    condition = _analytics_condition(where)
    health = _health_filter(where)
    conditions = listing.conditions(
        viewer.organization_id,
        user_type=_label(where.user_type, "userType") if where.user_type else None,
        acquisition_channel=_label(where.acquisition_channel, "acquisitionChannel")
        if where.acquisition_channel
        else None,
        workflow_status=where.workflow_status,
        search=optional_text(where.search, field="search", max_length=200),
        signed_up_from=datetime.combine(where.signed_up_from, time(), UTC)
        if where.signed_up_from
        else None,
        signed_up_before=datetime.combine(where.signed_up_to + timedelta(days=1), time(), UTC)
        if where.signed_up_to
        else None,
        template_version=where.template_version,
        health=health,
        raw=[condition] if condition else [],
    )
    return await listing.page(
        conditions, first=first, after=after, order=order, health=health, workflows=workflows
    )


_KEY = re.compile(r"^[a-z0-9_-]{0,80}$")


def _analytics_condition(where: CustomerFilter) -> str | None:
    """SQL over the customer's analytics contribution, so a drill-down lists exactly the
    customers its figure counted."""
    parts = []
    if where.outcome is not None:
        stage, task = where.stage_key or "", where.task_key or ""
        if not (_KEY.match(stage) and _KEY.match(task)) or not stage:
            raise ValidationFailed("Pass the `stageKey` (and `taskKey`) of a funnel step.")
        parts.append(
            "EXISTS (SELECT 1 FROM jsonb_array_elements(a.contribution->'steps') e"
            f" WHERE e->>0 = '{stage}' AND e->>1 = '{task}'"
            f" AND (e->3->>{OUTCOMES.index(where.outcome)})::int = 1)"
        )
    if where.active is not None:
        parts.append(f"(a.contribution->'cohort'->>2)::int = {int(where.active)}")
    if where.completed_within_weeks is not None:
        weeks = int(where.completed_within_weeks)
        parts.append(f"(a.contribution->'cohort'->>6)::int BETWEEN 0 AND {weeks}")
    if not parts:
        return None
    return (
        "EXISTS (SELECT 1 FROM analytics_customer a WHERE a.id = customer.id AND "
        + " AND ".join(parts)
        + ")"
    )
