"""Workflow templates: versioned definitions per organization."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

from tortoise.exceptions import IntegrityError

from app.accounts.models import Operator, Organization, Role
from app.accounts.service import create_organization
from app.accounts.viewer import Viewer
from app.audit import service as audit
from app.errors import Conflict, NotFound
from app.health import versions as health_versions
from app.kit.tenancy import Tenant, scoped
from app.onboarding.definitions import TemplateDef, load_text, parse_definition
from app.onboarding.models import WorkflowTemplate


@lru_cache(maxsize=1)
def bundled_default_text() -> str:
    """The text of the default template shipped with Liftoff."""
    return (resources.files("app.onboarding") / "templates" / "default.yaml").read_text()


def bundled_default() -> dict[str, Any]:
    """The default template as plain data."""
    data = load_text(bundled_default_text())
    assert isinstance(data, dict)
    return data


async def install_template(
    viewer: Viewer, *, definition: Any, make_default: bool, created_by: str | None
) -> WorkflowTemplate:
    """Validate `definition` (plain data, or YAML/JSON text) and store it as the next version
    of its key (ADMIN)."""
    viewer.require(Role.ADMIN)
    parsed = parse_definition(load_text(definition) if isinstance(definition, str) else definition)
    latest = (
        await scoped(WorkflowTemplate, viewer).filter(key=parsed.key).order_by("-version").first()
    )
    version = (latest.version + 1) if latest else 1
    if make_default:
        await scoped(WorkflowTemplate, viewer).filter(is_default=True).update(is_default=False)
    try:
        row = await WorkflowTemplate.create(
            organization_id=viewer.organization_id,
            key=parsed.key,
            version=version,
            name=parsed.name,
            description=parsed.description,
            definition=parsed.model_dump(mode="json"),
            is_default=make_default or (latest is not None and latest.is_default),
            created_by=created_by,
        )
    except IntegrityError:
        raise Conflict(
            f"Template {parsed.key!r} v{version} was created concurrently; retry."
        ) from None
    await audit.record(
        viewer=viewer,
        action="template.install",
        target_type="workflow_template",
        target_id=row.id,
        after={"key": row.key, "version": row.version, "isDefault": row.is_default},
    )
    return row


async def default_template(tenant: Tenant) -> WorkflowTemplate:
    """The newest version of the organization's default template."""
    row = (
        await scoped(WorkflowTemplate, tenant).filter(is_default=True).order_by("-version").first()
    )
    if row is None:
        raise NotFound("This organization has no default workflow template; install one first.")
    return row


async def get_template(tenant: Tenant, template_id: uuid.UUID) -> WorkflowTemplate:
    """One template version of the tenant."""
    row = await scoped(WorkflowTemplate, tenant).get_or_none(id=template_id)
    if row is None:
        raise NotFound(f"No workflow template with id {template_id}.")
    return row


async def list_templates(viewer: Viewer) -> list[WorkflowTemplate]:
    """Every template version of the organization, newest first per key (operators)."""
    viewer.require(Role.ADMIN, Role.CSM)
    return await scoped(WorkflowTemplate, viewer).order_by("key", "-version")


def definition_of(row: WorkflowTemplate) -> TemplateDef:
    """The stored definition, already validated when installed."""
    return TemplateDef.model_validate(row.definition)


@dataclass(frozen=True)
class NewOrganization:
    """An organization ready to onboard customers."""

    organization: Organization
    admin: Operator
    viewer: Viewer
    template: WorkflowTemplate | None


async def open_organization(
    *,
    name: str,
    slug: str,
    admin_email: str,
    admin_name: str,
    created_by: str,
    template: bool = True,
) -> NewOrganization:
    """A new organization with its first ADMIN and (unless told not to) the bundled default
    template as its default and the default health model."""
    org, admin = await create_organization(
        name=name, slug=slug, admin_email=admin_email, admin_name=admin_name
    )
    viewer = Viewer(subject=admin.email, organization_id=org.id, role=Role.ADMIN)
    row = None
    if template:
        row = await install_template(
            viewer, definition=bundled_default(), make_default=True, created_by=created_by
        )
        from app.automation.service import install_default_rules

        await install_default_rules(viewer, enabled=False)
        await health_versions.install_default(viewer, created_by=created_by)
        from app.milestones.service import install_default as install_milestones

        await install_milestones(viewer, created_by=created_by)
    return NewOrganization(organization=org, admin=admin, viewer=viewer, template=row)
