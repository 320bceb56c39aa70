"""An organization's rate-limit budgets (ADMIN): read them, lower them, put them back."""

from __future__ import annotations

from enum import Enum

import strawberry

from app.accounts import ratelimits
from app.db import transaction
from app.graphql.accounts.tokens import announce
from app.graphql.customers.types import Info


@strawberry.enum(description="The rate-limit budgets an organization may set for itself.")
class RateLimitName(Enum):
    READS = "reads"
    WRITES = "writes"
    SUBSCRIBES = "subscribes"
    ORGANIZATION = "organization"
    INGEST = "ingest"


@strawberry.type(description="One rate-limit budget of the organization as it applies now.")
class RateLimitBudget:
    name: RateLimitName
    limit: str = strawberry.field(description="In `limits` notation, e.g. `600/minute`.")
    default: str = strawberry.field(description="The server's default for this budget.")
    overridden: bool
    reason: str | None

    @classmethod
    def of(cls, b: ratelimits.Budget) -> RateLimitBudget:
        return cls(
            name=RateLimitName(b.name),
            limit=b.limit,
            default=b.default,
            overridden=b.overridden,
            reason=b.reason,
        )


@strawberry.type
class Query:
    @strawberry.field(
        description="The organization's rate-limit budgets: per token subject for reads, "
        "writes, subscriptions and ingestion, and for the whole organization (ADMIN)."
    )
    async def rate_limits(self, info: Info) -> list[RateLimitBudget]:
        found = await ratelimits.budgets(info.context.viewer, info.context.settings)
        return [RateLimitBudget.of(b) for b in found]


@strawberry.type
class Mutation:
    @strawberry.mutation(
        description="Set the organization's own budget for `name` (ADMIN, audited), e.g. to "
        "keep one integration from using the whole allowance; `limit: null` puts the "
        "default back. Admins may lower a budget, not raise it above the server's default "
        "(whoever runs the server does that with `liftoff rate-limit`). Every api process "
        "applies it within LIFTOFF_AUTH_CACHE_SECONDS."
    )
    async def set_rate_limit(
        self, info: Info, name: RateLimitName, limit: str | None, reason: str | None = None
    ) -> RateLimitBudget:
        viewer = info.context.viewer
        async with transaction():
            found = await ratelimits.set_override(
                viewer, info.context.settings, budget=name.value, limit=limit, reason=reason
            )
        await announce(info, str(viewer.organization_id), "*rate-limits*")
        return RateLimitBudget.of(found)
