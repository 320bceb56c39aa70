"""GraphQL types of accounts: the viewer and its organization."""

from __future__ import annotations

from datetime import datetime

import strawberry

from app.accounts.models import Organization as OrganizationRow


@strawberry.type(description="A tenant.")
class Organization:
    id: strawberry.ID
    name: str
    slug: str
    created_at: datetime

    @classmethod
    def of(cls, row: OrganizationRow) -> Organization:
        return cls(
            id=strawberry.ID(str(row.id)), name=row.name, slug=row.slug, created_at=row.created_at
        )
