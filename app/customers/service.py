"""Customer use cases: sign one up (starting its workflow), read and list them."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q

from app.accounts.models import Role
from app.accounts.service import check_email
from app.accounts.viewer import Viewer
from app.customers.models import Customer
from app.errors import Conflict, NotFound, ValidationFailed
from app.events import outbox
from app.kit.clock import utcnow
from app.kit.pagination import Page, paginate
from app.kit.tenancy import scoped
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
    """Filters of the customers list."""

    user_type: str | None = None
    acquisition_channel: str | None = None
    workflow_status: WorkflowStatus | None = None
    search: str | None = None


def _label(value: str, field: str) -> str:
    cleaned = value.strip().lower()
    if not cleaned or len(cleaned) > 64:
        raise ValidationFailed(f"`{field}` must be 1-64 characters.", field=field)
    return cleaned


async def create_customer(viewer: Viewer, data: NewCustomer) -> Customer:
    """Sign a customer up and start its workflow on the default (or given) template."""
    viewer.require(Role.ADMIN, Role.CSM)
    if not data.name.strip():
        raise ValidationFailed("The customer needs a name.", field="name")
    now = utcnow()
    signed_up_at = data.signed_up_at or now
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
            name=data.name.strip(),
            company=data.company,
            external_id=data.external_id,
            user_type=_label(data.user_type, "userType"),
            acquisition_channel=_label(data.acquisition_channel, "acquisitionChannel"),
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


async def list_customers(
    viewer: Viewer, *, first: int | None, after: str | None, where: CustomerFilter
) -> Page[Customer]:
    """A page of the organization's customers (operators only)."""
    viewer.require(Role.ADMIN, Role.CSM)
    query = scoped(Customer, viewer)
    if where.user_type:
        query = query.filter(user_type=where.user_type.lower())
    if where.acquisition_channel:
        query = query.filter(acquisition_channel=where.acquisition_channel.lower())
    if where.workflow_status:
        query = query.filter(workflows__status=where.workflow_status.value)
    if where.search:
        query = query.filter(Q(name__icontains=where.search) | Q(email__icontains=where.search))
    return await paginate(query, first=first, after=after)
