"""The audit log, for admins."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

import strawberry
from strawberry.scalars import JSON

from app.audit import service
from app.audit.models import AuditEntry as AuditRow
from app.graphql.customers.types import Info, PageInfo
from app.kit.pagination import Page, encode_cursor


@strawberry.type(description="One administrative action: who, when, what, before and after.")
class AuditEntry:
    id: strawberry.ID
    actor: str
    actor_role: str
    action: str
    target_type: str
    target_id: str | None
    before: JSON | None
    after: JSON | None
    reason: str | None
    request_id: str | None = strawberry.field(description="The request that did it, if known.")
    created_at: datetime

    @classmethod
    def of(cls, row: AuditRow) -> AuditEntry:
        return cls(
            id=strawberry.ID(str(row.id)),
            actor=row.actor,
            actor_role=row.actor_role,
            action=row.action,
            target_type=row.target_type,
            target_id=row.target_id,
            before=cast(Any, row.before),
            after=cast(Any, row.after),
            reason=row.reason,
            request_id=row.request_id,
            created_at=row.created_at,
        )


@strawberry.type
class AuditEntryEdge:
    cursor: str
    node: AuditEntry


@strawberry.type(description="A page of audit entries, oldest first (`first` capped at 100).")
class AuditEntryConnection:
    edges: list[AuditEntryEdge]
    page_info: PageInfo
    total_count: int

    @classmethod
    def of(cls, page: Page[AuditRow]) -> AuditEntryConnection:
        return cls(
            edges=[
                AuditEntryEdge(cursor=encode_cursor(r), node=AuditEntry.of(r)) for r in page.items
            ],
            page_info=PageInfo(
                has_next_page=page.has_next_page,
                has_previous_page=page.has_previous_page,
                start_cursor=page.start_cursor,
                end_cursor=page.end_cursor,
            ),
            total_count=page.total_count,
        )


@strawberry.input(description="Which audit entries to list.")
class AuditLogFilter:
    action: str | None = strawberry.field(default=None, description="Action or its prefix.")
    actor: str | None = None
    target_type: str | None = None
    target_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None


@strawberry.type
class Query:
    @strawberry.field(description="The organization's audit log (ADMIN).")
    async def audit_log(
        self,
        info: Info,
        filter: AuditLogFilter | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> AuditEntryConnection:
        f = filter or AuditLogFilter()
        where = service.AuditFilter(
            action=f.action,
            actor=f.actor,
            target_type=f.target_type,
            target_id=f.target_id,
            since=f.since,
            until=f.until,
        )
        page = await service.list_entries(
            info.context.viewer, where=where, first=first, after=after
        )
        return AuditEntryConnection.of(page)
