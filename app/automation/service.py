"""Rule administration: create, change (a new version each time), enable, delete, read.
Every change is audited; runs, executions and notifications are read here too."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import yaml

from app.accounts.models import Role
from app.accounts.viewer import Viewer
from app.audit import service as audit
from app.automation.models import (
    AutomationRule,
    AutomationRuleVersion,
    AutomationRun,
    RunStatus,
)
from app.automation.rules import parse_rule
from app.errors import Conflict, NotFound
from app.kit.clock import utcnow
from app.kit.ids import parse_id
from app.kit.pagination import Page, paginate
from app.kit.tenancy import Tenant, scoped

DEFAULTS_FILE = Path(__file__).with_name("defaults.yaml")


def _snapshot(row: AutomationRule) -> dict[str, Any]:
    return {
        "name": row.name,
        "enabled": row.enabled,
        "version": row.version,
        "definition": row.definition,
    }


async def _version(row: AutomationRule, *, by: str | None) -> None:
    await AutomationRuleVersion.create(
        organization_id=row.organization_id,  # type: ignore[attr-defined]
        rule_id=row.id,
        version=row.version,
        enabled=row.enabled,
        definition=row.definition,
        created_by=by,
    )


async def create_rule(
    viewer: Viewer,
    *,
    definition: Any,
    enabled: bool = False,
    key: str | None = None,
    audited: bool = True,
) -> AutomationRule:
    """A new rule at version 1 (admin); refused with every reason when invalid."""
    viewer.require(Role.ADMIN)
    parsed = parse_rule(definition)
    if key is not None and await scoped(AutomationRule, viewer).filter(key=key).exists():
        raise Conflict(f"A rule with key {key!r} already exists.", field="key")
    row = await AutomationRule.create(
        organization_id=viewer.organization_id,
        key=key,
        name=parsed.name,
        enabled=enabled,
        priority=parsed.priority,
        trigger_key=parsed.trigger_key,
        definition=parsed.document(),
        created_by=viewer.subject,
    )
    await _version(row, by=viewer.subject)
    if not audited:
        return row
    await audit.record(
        viewer=viewer,
        action="automation_rule.create",
        target_type="AutomationRule",
        target_id=row.id,
        after=_snapshot(row),
    )
    return row


async def get_rule(
    tenant: Tenant, rule_id: str | uuid.UUID, *, lock: bool = False
) -> AutomationRule:
    """One live rule of the organization, or NOT_FOUND."""
    rid = parse_id(rule_id, what="automation rule")
    query = scoped(AutomationRule, tenant).filter(id=rid, deleted_at__isnull=True)
    if lock:
        query = query.select_for_update()
    row = await query.first()
    if row is None:
        raise NotFound(f"No automation rule with id {rid}.", rule=str(rid))
    return row


async def read_rule(viewer: Viewer, rule_id: str) -> AutomationRule:
    """A rule, for operators."""
    viewer.require(Role.ADMIN, Role.CSM)
    return await get_rule(viewer, rule_id)


async def list_rules(viewer: Viewer, *, enabled: bool | None) -> list[AutomationRule]:
    """The organization's rules, highest priority first (operators)."""
    viewer.require(Role.ADMIN, Role.CSM)
    query = scoped(AutomationRule, viewer).filter(deleted_at__isnull=True)
    if enabled is not None:
        query = query.filter(enabled=enabled)
    return await query.order_by("-priority", "created_at")


async def update_rule(viewer: Viewer, rule_id: str, *, definition: Any) -> AutomationRule:
    """Replace a rule's definition: the next version; runs keep the version they used."""
    viewer.require(Role.ADMIN)
    parsed = parse_rule(definition)
    row = await get_rule(viewer, rule_id, lock=True)
    before = _snapshot(row)
    row.definition = parsed.document()
    row.name, row.priority, row.trigger_key = parsed.name, parsed.priority, parsed.trigger_key
    row.version += 1
    await row.save()
    await _version(row, by=viewer.subject)
    await audit.record(
        viewer=viewer,
        action="automation_rule.update",
        target_type="AutomationRule",
        target_id=row.id,
        before=before,
        after=_snapshot(row),
    )
    return row


async def set_enabled(viewer: Viewer, rule_id: str, *, enabled: bool) -> AutomationRule:
    """Turn a rule on or off (admin)."""
    viewer.require(Role.ADMIN)
    row = await get_rule(viewer, rule_id, lock=True)
    if row.enabled != enabled:
        row.enabled = enabled
        await row.save(update_fields=["enabled", "updated_at"])
        await audit.record(
            viewer=viewer,
            action="automation_rule.enable" if enabled else "automation_rule.disable",
            target_type="AutomationRule",
            target_id=row.id,
            before={"enabled": not enabled},
            after={"enabled": enabled},
        )
    return row


async def delete_rule(viewer: Viewer, rule_id: str) -> AutomationRule:
    """Delete a rule (admin); its runs stay readable for the statistics."""
    viewer.require(Role.ADMIN)
    row = await get_rule(viewer, rule_id, lock=True)
    before = _snapshot(row)
    row.deleted_at, row.enabled = utcnow(), False
    row.key = None
    await row.save(update_fields=["deleted_at", "enabled", "key", "updated_at"])
    await audit.record(
        viewer=viewer,
        action="automation_rule.delete",
        target_type="AutomationRule",
        target_id=row.id,
        before=before,
    )
    return row


async def list_versions(tenant: Tenant, rule_id: uuid.UUID) -> list[AutomationRuleVersion]:
    """Every version of a rule, oldest first."""
    return await scoped(AutomationRuleVersion, tenant).filter(rule_id=rule_id).order_by("version")


async def list_runs(
    viewer: Viewer,
    *,
    rule_id: str | None,
    status: RunStatus | None,
    customer_id: str | None,
    first: int | None,
    after: str | None,
) -> Page[AutomationRun]:
    """Runs, oldest first, filtered by rule, status or customer (operators)."""
    viewer.require(Role.ADMIN, Role.CSM)
    query = scoped(AutomationRun, viewer)
    if rule_id is not None:
        query = query.filter(rule_id=parse_id(rule_id, what="automation rule"))
    if status is not None:
        query = query.filter(status=status)
    if customer_id is not None:
        query = query.filter(customer_id=parse_id(customer_id, what="customer"))
    return await paginate(query, first=first, after=after)


def default_definitions() -> list[dict[str, Any]]:
    """The bundled default rules, each with its `key`."""
    data = yaml.safe_load(DEFAULTS_FILE.read_text())
    return list(data["rules"])


async def install_default_rules(viewer: Viewer, *, enabled: bool) -> list[AutomationRule]:
    """Install the default rules the organization does not have yet (by key); part of
    opening an organization, like its default template, so not an audited admin action."""
    have = set(
        await scoped(AutomationRule, viewer).filter(key__isnull=False).values_list("key", flat=True)
    )
    out = []
    for raw in default_definitions():
        key = raw["key"]
        if key in have:
            continue
        definition = {k: v for k, v in raw.items() if k != "key"}
        out.append(
            await create_rule(
                viewer, definition=definition, enabled=enabled, key=key, audited=False
            )
        )
    return out
