"""Health model versions per organization: install a new one, read the one that scores."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from tortoise.exceptions import IntegrityError

from app.accounts.models import Role
from app.accounts.viewer import Viewer
from app.audit import service as audit
from app.errors import Conflict
from app.health.definitions import HealthModelDef, bundled_default, parse_model
from app.health.models import HealthModel
from app.kit.tenancy import Tenant, scoped


@dataclass(frozen=True)
class Current:
    """The model that scores an organization's customers, and its version (0: built-in)."""

    model: HealthModelDef
    version: int
    row: HealthModel | None = None


async def install_model(viewer: Viewer, *, definition: Any, created_by: str | None) -> HealthModel:
    """Validate `definition` (plain data, or YAML/JSON text) and store it as the next version
    (ADMIN, audited); it scores from the next recompute on."""
    row, previous = await _store(viewer, definition=definition, created_by=created_by)
    await audit.record(
        viewer=viewer,
        action="health.model_installed",
        target_type="health_model",
        target_id=row.id,
        before={"version": previous} if previous else None,
        after={"version": row.version, "name": row.name},
    )
    return row


async def _store(
    viewer: Viewer, *, definition: Any, created_by: str | None
) -> tuple[HealthModel, int | None]:
    viewer.require(Role.ADMIN)
    parsed = parse_model(definition)
    latest = await scoped(HealthModel, viewer).order_by("-version").first()
    version = (latest.version + 1) if latest else 1
    try:
        row = await HealthModel.create(
            organization_id=viewer.organization_id,
            version=version,
            name=parsed.name,
            definition=parsed.model_dump(mode="json"),
            created_by=created_by,
        )
    except IntegrityError:
        raise Conflict(f"Health model v{version} was installed concurrently; retry.") from None
    return row, latest.version if latest else None


async def install_default(viewer: Viewer, *, created_by: str | None) -> HealthModel:
    """Install the bundled default model as part of opening an organization."""
    row, _ = await _store(
        viewer, definition=bundled_default().model_dump(mode="json"), created_by=created_by
    )
    return row


async def current_model(tenant: Tenant) -> Current:
    """The newest installed version, or the bundled default when none is installed."""
    row = await scoped(HealthModel, tenant).order_by("-version").first()
    if row is None:
        return Current(bundled_default(), 0)
    return Current(HealthModelDef.model_validate(row.definition), row.version, row)


async def model_versions(viewer: Viewer) -> list[HealthModel]:
    """Every installed version, newest first (operators)."""
    viewer.require(Role.ADMIN, Role.CSM)
    return await scoped(HealthModel, viewer).order_by("-version")


async def model_version(tenant: Tenant, version: int) -> HealthModelDef:
    """The definition of one version (0: the built-in default)."""
    if version == 0:
        return bundled_default()
    row = await scoped(HealthModel, tenant).get_or_none(version=version)
    return bundled_default() if row is None else HealthModelDef.model_validate(row.definition)


def org_of(organization_id: uuid.UUID) -> Tenant:
    """A tenant handle for system work (jobs, consumers) on one organization."""
    return _Org(organization_id)


@dataclass(frozen=True)
class _Org:
    organization_id: uuid.UUID
