"""Token revocation."""

from __future__ import annotations

import contextlib

import strawberry

from app.accounts import access
from app.db import transaction
from app.graphql.customers.types import Info


@strawberry.type(description="The outcome of revoking a subject's tokens.")
class RevokedTokens:
    subject: str
    version: int = strawberry.field(description="The token version new tokens now carry.")


async def announce(info: Info, organization_id: str, subject: str) -> None:
    """Tell every api process (through the broker) that `subject`'s tokens changed; without
    the broker each process still notices within LIFTOFF_AUTH_CACHE_SECONDS."""
    with contextlib.suppress(Exception):
        await info.context.hub.publish(access.CHANNEL, f"{organization_id}:{subject}")


@strawberry.type
class Mutation:
    @strawberry.mutation(
        description="Revoke every token of `subject` minted so far (ADMIN); open websockets "
        "of that subject are closed with 4403. New tokens carry the new version."
    )
    async def revoke_tokens(self, info: Info, subject: str) -> RevokedTokens:
        viewer = info.context.viewer
        async with transaction():
            version = await access.revoke_tokens(viewer, subject=subject)
        await announce(info, str(viewer.organization_id), subject.strip())
        return RevokedTokens(subject=subject.strip(), version=version)
