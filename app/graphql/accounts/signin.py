"""Sign-in mutations (password, single-use link) and operator administration."""

from __future__ import annotations

from datetime import datetime, timedelta

import strawberry

from app.accounts import signin
from app.accounts.access import fresh_token
from app.accounts.models import Operator as OperatorRow
from app.db import transaction
from app.errors import ValidationFailed
from app.graphql.accounts.types import Organization
from app.graphql.customers.types import Info
from app.graphql.enums import Role
from app.kit.clock import utcnow


@strawberry.type(description="A member of the organization's team.")
class Operator:
    id: strawberry.ID
    email: str
    name: str
    role: Role
    created_at: datetime

    @classmethod
    def of(cls, row: OperatorRow) -> Operator:
        return cls(
            id=strawberry.ID(str(row.id)),
            email=row.email,
            name=row.name,
            role=row.role,
            created_at=row.created_at,
        )


@strawberry.type(description="A short-lived access token; send it as `Authorization: Bearer`.")
class SignInPayload:
    token: str
    expires_at: datetime
    subject: str
    role: Role
    organization: Organization
    customer_id: strawberry.ID | None


@strawberry.input
class CreateOperatorInput:
    email: str
    name: str
    role: Role
    password: str | None = strawberry.field(
        default=None, description="At least 12 characters; without one, sign in by link."
    )


def _address(info: Info) -> str:
    client = info.context.request.client
    return client.host if client else "unknown"


async def _payload(
    info: Info, outcome: signin.Outcome, *, minutes: int | None = None
) -> SignInPayload:
    done = outcome.unwrap()
    viewer, settings = done.viewer, info.context.settings
    ttl = timedelta(minutes=minutes or settings.signin_ttl_minutes)
    return SignInPayload(
        token=await fresh_token(
            settings,
            subject=viewer.subject,
            organization_id=viewer.organization_id,
            role=viewer.role,
            customer_id=viewer.customer_id,
            ttl=ttl,
        ),
        expires_at=utcnow() + ttl,
        subject=viewer.subject,
        role=viewer.role,
        organization=Organization.of(done.organization),
        customer_id=strawberry.ID(str(viewer.customer_id)) if viewer.customer_id else None,
    )


@strawberry.type
class Mutation:
    @strawberry.mutation(
        description="Sign an operator in with email and password; repeated failures are slowed, "
        "then locked for a while, per account and per address (RATE_LIMITED)."
    )
    async def login(
        self, info: Info, email: str, password: str, organization: str | None = None
    ) -> SignInPayload:
        async with transaction():
            outcome = await signin.login(
                email=email, password=password, organization=organization, address=_address(info)
            )
        return await _payload(info, outcome)

    @strawberry.mutation(
        description="Exchange a single-use sign-in link's secret (15 minutes) for an access token."
    )
    async def redeem_sign_in_link(self, info: Info, secret: str) -> SignInPayload:
        async with transaction():
            outcome = await signin.redeem_link(secret=secret, address=_address(info))
        return await _payload(info, outcome)

    @strawberry.mutation(
        description="A short-lived CUSTOMER token for one customer (admin), for the company's "
        "server to hand to an embedded checklist (`/checklist#token=…`)."
    )
    async def issue_customer_token(
        self, info: Info, customer_id: strawberry.ID, ttl_minutes: int = 60
    ) -> SignInPayload:
        if not 1 <= ttl_minutes <= 1440:
            raise ValidationFailed("ttlMinutes must be 1-1440.", field="ttlMinutes")
        async with transaction():
            done = await signin.customer_session(info.context.viewer, customer_id=customer_id)
        return await _payload(info, signin.Outcome(signed_in=done), minutes=ttl_minutes)

    @strawberry.mutation(description="Add an ADMIN or CSM to the organization (admin).")
    async def create_operator(self, info: Info, input: CreateOperatorInput) -> Operator:
        async with transaction():
            row = await signin.create_operator(
                info.context.viewer,
                email=input.email,
                name=input.name,
                role=input.role,
                password=input.password,
            )
        return Operator.of(row)
