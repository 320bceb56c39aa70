"""Tenancy by construction: every tenant-owned query starts here."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Protocol, TypeVar

from tortoise.models import Model
from tortoise.queryset import QuerySet

M = TypeVar("M", bound=Model)


class Tenant(Protocol):
    """Anything that knows which organization it acts for."""

    @property
    def organization_id(self) -> uuid.UUID: ...


def scoped(model: type[M], tenant: Tenant) -> QuerySet[M]:
    """`model`'s rows that belong to the tenant's organization, and no others."""
    return model.filter(organization_id=tenant.organization_id)


@dataclass(frozen=True)
class Organization:
    """The tenant of system work (consumers, jobs) on one organization."""

    organization_id: uuid.UUID
