"""Milestone use cases: install a set, read progress, evaluate and record achievements.

Callers open the transaction; every function here runs inside it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tortoise.connection import get_connection
from tortoise.exceptions import IntegrityError

from app.accounts.models import Role
from app.accounts.viewer import Viewer
from app.audit import service as audit
from app.customers.models import Customer
from app.errors import Conflict, NotFound
from app.kit.clock import utcnow
from app.kit.tenancy import Organization, Tenant, scoped
from app.milestones.definitions import MilestoneDef, MilestoneSetDef, bundled_default, parse_set
from app.milestones.facts import load_facts
from app.milestones.models import MilestoneSet
from app.milestones.rules import Progress, evaluate
from app.onboarding import system
from app.onboarding.models import WorkflowTemplate
from app.onboarding.templates import definition_of

ACHIEVED = "milestone.achieved"
MAX_NEW_PER_EVALUATION = 50
"""Occurrences of one repeatable milestone recorded at once (a backfill catches up later)."""

_INSERT = """INSERT INTO milestone_achievement (organization_id, customer_id, milestone_key,
  occurrence, set_version, name, value, points, badge, achieved_at)
SELECT $1, c, k, o, $2, n, v, p, b::jsonb, a FROM unnest($3::uuid[], $4::text[], $5::int[],
  $6::text[], $7::float8[], $8::int[], $9::text[], $10::timestamptz[])
  WITH ORDINALITY AS u(c, k, o, n, v, p, b, a, i)
ORDER BY i
ON CONFLICT (organization_id, customer_id, milestone_key, occurrence) DO NOTHING
RETURNING customer_id, milestone_key, occurrence"""
_ACHIEVED = """SELECT customer_id, milestone_key, max(occurrence) AS times,
  min(achieved_at) AS first_at, max(achieved_at) AS last_at
FROM milestone_achievement WHERE organization_id = $1 AND customer_id = ANY($2::uuid[])
GROUP BY customer_id, milestone_key"""


@dataclass(frozen=True)
class CurrentSet:
    """The milestones evaluated for an organization, and their version."""

    definition: MilestoneSetDef
    version: int

    def milestone(self, key: str) -> MilestoneDef | None:
        return next((m for m in self.definition.milestones if m.key == key), None)


@dataclass(frozen=True)
class MilestoneView:
    """One milestone for one customer: its definition, progress and achievements."""

    milestone: MilestoneDef
    progress: Progress
    times: int
    achieved_at: datetime | None
    last_achieved_at: datetime | None


@dataclass(frozen=True)
class Achieved:
    """An achievement just recorded."""

    customer_id: uuid.UUID
    milestone: MilestoneDef
    occurrence: int
    value: float
    achieved_at: datetime


async def _template_keys(tenant: Tenant) -> tuple[frozenset[str], frozenset[str]]:
    row = (
        await scoped(WorkflowTemplate, tenant).filter(is_default=True).order_by("-version").first()
    )
    if row is None:
        return frozenset(), frozenset()
    d = definition_of(row)
    return (
        frozenset(t.key for s in d.stages for t in s.tasks),
        frozenset(s.key for s in d.stages),
    )


async def install_set(viewer: Viewer, *, definition: Any, created_by: str | None) -> MilestoneSet:
    """Validate a set (plain data, or YAML/JSON text) against the default template and store
    it as the next version (ADMIN, audited); it is evaluated from the next event on."""
    viewer.require(Role.ADMIN)
    tasks, stages = await _template_keys(viewer)
    parsed = parse_set(definition, tasks=tasks, stages=stages)
    row, previous = await _store(viewer, parsed, created_by=created_by)
    await audit.record(
        viewer=viewer,
        action="milestones.install",
        target_type="milestone_set",
        target_id=row.id,
        before={"version": previous} if previous else None,
        after={"version": row.version, "name": row.name, "milestones": len(parsed.milestones)},
    )
    return row


async def install_default(viewer: Viewer, *, created_by: str | None) -> MilestoneSet:
    """Install the bundled default set as part of opening an organization."""
    row, _ = await _store(viewer, bundled_default(), created_by=created_by)
    return row


async def _store(
    tenant: Tenant, parsed: MilestoneSetDef, *, created_by: str | None
) -> tuple[MilestoneSet, int | None]:
    latest = await scoped(MilestoneSet, tenant).order_by("-version").first()
    version = (latest.version + 1) if latest else 1
    try:
        row = await MilestoneSet.create(
            organization_id=tenant.organization_id,
            version=version,
            name=parsed.name,
            definition=parsed.model_dump(mode="json", exclude_none=True),
            created_by=created_by,
        )
    except IntegrityError:
        raise Conflict(f"Milestone set v{version} was installed concurrently; retry.") from None
    return row, latest.version if latest else None


async def current_set(tenant: Tenant) -> CurrentSet | None:
    """The newest installed set, or None when the organization has none."""
    row = await scoped(MilestoneSet, tenant).order_by("-version").first()
    if row is None:
        return None
    return CurrentSet(MilestoneSetDef.model_validate(row.definition), row.version)


async def list_sets(viewer: Viewer) -> list[MilestoneSet]:
    """Every installed version, newest first (operators)."""
    viewer.require(Role.ADMIN, Role.CSM)
    return await scoped(MilestoneSet, viewer).order_by("-version")


async def _achieved(
    organization_id: uuid.UUID, ids: Sequence[uuid.UUID]
) -> dict[tuple[uuid.UUID, str], dict[str, Any]]:
    rows = await get_connection("default").execute_query_dict(
        _ACHIEVED, [organization_id, list(ids)]
    )
    return {(r["customer_id"], r["milestone_key"]): r for r in rows}


async def progress_of(
    tenant: Tenant, customer_ids: Sequence[uuid.UUID], *, now: datetime | None = None
) -> dict[uuid.UUID, list[MilestoneView]]:
    """Each customer's milestones with progress and achievements (customers of other
    organizations get none)."""
    current = await current_set(tenant)
    if current is None or not customer_ids:
        return {}
    now = now or utcnow()
    org = tenant.organization_id
    facts = await load_facts(org, customer_ids, current.definition, now=now)
    done = await _achieved(org, list(facts))
    out: dict[uuid.UUID, list[MilestoneView]] = {}
    for cid, f in facts.items():
        views = []
        for m in current.definition.milestones:
            p = evaluate(m, f)
            row = done.get((cid, m.key))
            times = int(row["times"]) if row else 0
            if times and not m.repeatable:  # once reached, it stays reached
                p = Progress(m.key, p.current, p.target, 100.0, "", max(1, p.occurrences))
            views.append(
                MilestoneView(
                    milestone=m,
                    progress=p,
                    times=times,
                    achieved_at=row["first_at"] if row else None,
                    last_achieved_at=row["last_at"] if row else None,
                )
            )
        out[cid] = views
    return out


async def milestones_for(
    viewer: Viewer, customer_id: str | uuid.UUID | None
) -> list[MilestoneView]:
    """A customer's milestones (the CUSTOMER's own, or the one an operator names)."""
    cid = viewer.customer_scope(customer_id)
    if not await scoped(Customer, viewer).filter(id=cid).exists():
        raise NotFound(f"No customer with id {cid}.", customer=str(cid))
    return (await progress_of(viewer, [cid])).get(cid, [])


async def evaluate_customers(
    organization_id: uuid.UUID,
    customer_ids: Sequence[uuid.UUID],
    *,
    now: datetime,
    award: bool = True,
) -> list[Achieved]:
    """Record the milestones the customers reached and award them; each occurrence is
    recorded once (a unique key), so concurrent evaluations award once."""
    tenant = Organization(organization_id)
    current = await current_set(tenant)
    if current is None or not customer_ids:
        return []
    facts = await load_facts(organization_id, customer_ids, current.definition, now=now)
    done = await _achieved(organization_id, list(facts))
    found: list[Achieved] = []
    for cid in sorted(facts):
        for m in current.definition.milestones:
            p = evaluate(m, facts[cid])
            row = done.get((cid, m.key))
            have = int(row["times"]) if row else 0
            last = min(p.occurrences, have + MAX_NEW_PER_EVALUATION)
            found += [Achieved(cid, m, n, p.current, now) for n in range(have + 1, last + 1)]
    recorded = await record_achievements(organization_id, current.version, found)
    if award:
        for a in recorded:
            await _award(tenant, a)
    return recorded


async def record_achievements(
    organization_id: uuid.UUID, version: int, found: list[Achieved]
) -> list[Achieved]:
    """Insert achievements; return those not recorded before (the unique key decides)."""
    if not found:
        return []
    rows = await get_connection("default").execute_query_dict(
        _INSERT,
        [
            organization_id,
            version,
            [a.customer_id for a in found],
            [a.milestone.key for a in found],
            [a.occurrence for a in found],
            [a.milestone.name for a in found],
            [float(a.value) for a in found],
            [a.milestone.reward.points for a in found],
            [json.dumps(_badge(a.milestone)) if a.milestone.reward.badge else None for a in found],
            [a.achieved_at for a in found],
        ],
    )
    inserted = {(r["customer_id"], r["milestone_key"], r["occurrence"]) for r in rows}
    return [a for a in found if (a.customer_id, a.milestone.key, a.occurrence) in inserted]


def _badge(m: MilestoneDef) -> dict[str, Any] | None:
    b = m.reward.badge
    return None if b is None else {**b.model_dump(exclude_none=True), "milestone": m.key}


def achievement_events(a: Achieved) -> list[tuple[str, dict[str, Any]]]:
    """`milestone.achieved` and its celebration."""
    m = a.milestone
    badge = _badge(m)
    if badge is not None:
        badge["awarded_at"] = a.achieved_at.isoformat()
    times = f" (x{a.occurrence})" if m.repeatable and a.occurrence > 1 else ""
    reward = f" +{m.reward.points} points." if m.reward.points else ""
    return [
        (
            ACHIEVED,
            {
                "milestone": m.key,
                "name": m.name,
                "icon": m.icon,
                "occurrence": a.occurrence,
                "value": a.value,
                "points": m.reward.points,
                "badge": badge,
            },
        ),
        (
            "celebration",
            {
                "kind": "MILESTONE_ACHIEVED",
                "title": f"Milestone reached: {m.name}{times}",
                "message": (m.description or f"You reached {m.name}.") + reward,
                "stage_key": None,
                "milestone": m.key,
                "points": m.reward.points,
                "badge": badge,
            },
        ),
    ]


async def _award(tenant: Tenant, a: Achieved) -> None:
    await system.award(
        tenant,
        a.customer_id,
        points=a.milestone.reward.points,
        badge=_badge(a.milestone),
        source=f"milestone:{a.milestone.key}",
        events=achievement_events(a),
        now=a.achieved_at,
    )
