"""API keys for the organization's servers: create (the secret once), list, revoke."""

from __future__ import annotations

import contextlib
from datetime import datetime
from enum import Enum

import strawberry

from app.accounts import access, apikeys
from app.accounts.models import ApiKey as ApiKeyRow
from app.db import transaction
from app.graphql.customers.types import Info


@strawberry.enum(description="What an API key may do.")
class ApiKeyScope(Enum):
    EVENTS_INGEST = apikeys.INGEST


@strawberry.type(description="A server-to-server credential of the organization (no secret).")
class ApiKey:
    id: strawberry.ID
    name: str
    prefix: str = strawberry.field(description="The first characters of the secret.")
    scopes: list[ApiKeyScope]
    created_by: str | None
    created_at: datetime
    last_used_at: datetime | None = strawberry.field(
        description="When it was last used (written at most once a minute)."
    )
    revoked_at: datetime | None

    @classmethod
    def of(cls, row: ApiKeyRow) -> ApiKey:
        return cls(
            id=strawberry.ID(str(row.id)),
            name=row.name,
            prefix=row.prefix,
            scopes=[ApiKeyScope(s) for s in row.scopes or () if s in apikeys.SCOPES],
            created_by=row.created_by,
            created_at=row.created_at,
            last_used_at=row.last_used_at,
            revoked_at=row.revoked_at,
        )


@strawberry.type(description="A new API key and its secret, which is never shown again.")
class CreatedApiKey:
    api_key: ApiKey
    secret: str = strawberry.field(
        description="Send it as `Authorization: Bearer <secret>` or `X-Api-Key: <secret>`."
    )


@strawberry.type
class Query:
    @strawberry.field(description="The organization's API keys, newest first (ADMIN).")
    async def api_keys(self, info: Info) -> list[ApiKey]:
        return [ApiKey.of(r) for r in await apikeys.list_keys(info.context.viewer)]


@strawberry.type
class Mutation:
    @strawberry.mutation(
        description="Create an API key for the organization's servers (ADMIN); the answer "
        "holds its secret, shown this once. Scopes default to EVENTS_INGEST."
    )
    async def create_api_key(
        self, info: Info, name: str, scopes: list[ApiKeyScope] | None = None
    ) -> CreatedApiKey:
        viewer = info.context.viewer
        async with transaction():
            row, secret = await apikeys.create_key(
                viewer, name=name, scopes=[s.value for s in scopes] if scopes else None
            )
        return CreatedApiKey(api_key=ApiKey.of(row), secret=secret)

    @strawberry.mutation(
        description="Revoke an API key (ADMIN): its next call gets UNAUTHENTICATED."
    )
    async def revoke_api_key(self, info: Info, id: strawberry.ID) -> ApiKey:
        viewer = info.context.viewer
        async with transaction():
            row = await apikeys.revoke_key(viewer, id)
        with contextlib.suppress(Exception):  # other api processes forget it at once
            await info.context.hub.publish(access.CHANNEL, f"{viewer.organization_id}:{row.prefix}")
        return ApiKey.of(row)
