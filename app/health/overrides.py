"""Scores set by hand: a CSM or admin overrides a score or level with a reason and an expiry.

An override shows on the score until it is cleared or expires; the worker ends expired ones
and puts the computed score back. Callers open the transaction.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from tortoise.connection import get_connection

from app.accounts.models import Role
from app.accounts.viewer import Viewer
from app.audit import service as audit
from app.customers.models import Customer
from app.errors import Conflict, NotFound, ValidationFailed
from app.events import outbox
from app.health import rules
from app.health.models import HealthOverride, HealthScore
from app.health.rules import HealthLevel
from app.health.versions import current_model
from app.kit.tenancy import scoped

MAX_DAYS = 366


def _check(
    *, score: float | None, level: HealthLevel | None, reason: str, expires_at: datetime,
    now: datetime,
) -> str:  # fmt: skip
    problems = []
    if score is None and level is None:
        problems.append("give a `score`, a `level` or both")
    if score is not None and not 0 <= score <= 100:
        problems.append("`score` must be between 0 and 100")
    cleaned = reason.strip()
    if not cleaned or len(cleaned) > 1000:
        problems.append("`reason` must be 1-1000 characters")
    if expires_at <= now:
        problems.append("`expiresAt` must be in the future")
    elif expires_at > now + timedelta(days=MAX_DAYS):
        problems.append(f"`expiresAt` must be within {MAX_DAYS} days")
    if problems:
        raise ValidationFailed("Override refused: " + "; ".join(problems), reasons=problems)
    return cleaned


def _change_event(
    row: HealthScore, *, score: float, level: str, reason: str
) -> list[tuple[str, dict[str, Any]]]:
    payload = {
        "customerId": str(row.customer_id),  # type: ignore[attr-defined]
        "score": round(score, 1),
        "previousScore": round(row.score, 1),
        "level": level,
        "previousLevel": row.level,
        "delta": round(score - row.score, 1),
        "topReason": reason,
        "modelVersion": row.model_version,
    }
    events = [("health.changed", payload)]
    if level != row.level:
        events.append(("health.level_changed", payload))
    return events


async def _locked_score(viewer: Viewer, customer_id: uuid.UUID) -> HealthScore:
    if not await scoped(Customer, viewer).filter(id=customer_id).exists():
        raise NotFound(f"No customer with id {customer_id}.", customer=str(customer_id))
    row = (
        await scoped(HealthScore, viewer)
        .filter(customer_id=customer_id)
        .select_for_update()
        .first()
    )
    if row is None:
        raise Conflict(
            "This customer has no health score yet; it is computed within seconds of its "
            "first event or by `recalculateHealthScores`.",
            customer=str(customer_id),
        )
    return row


async def set_override(
    viewer: Viewer,
    *,
    customer_id: str,
    score: float | None,
    level: HealthLevel | None,
    reason: str,
    expires_at: datetime,
    now: datetime,
) -> tuple[HealthOverride, dict[str, Any], dict[str, Any]]:
    """Override a customer's score and/or level until `expires_at` (ADMIN, CSM); return it
    with the shown values before and after, for the audit trail."""
    viewer.require(Role.ADMIN, Role.CSM)
    cleaned = _check(score=score, level=level, reason=reason, expires_at=expires_at, now=now)
    cid = viewer.customer_scope(customer_id)
    row = await _locked_score(viewer, cid)
    before = {"score": row.score, "level": row.level}
    await (
        scoped(HealthOverride, viewer)
        .filter(customer_id=cid, ended_at=None)
        .update(ended_at=now, ended_by=viewer.label)
    )
    model = (await current_model(viewer)).model.for_segment(row.segment)
    shown = row.computed_score if score is None else score
    shown_level = level.value if level else rules.level_of(model, shown).value
    override = await HealthOverride.create(
        organization_id=viewer.organization_id,
        customer_id=cid,
        score=score,
        level=level.value if level else None,
        reason=cleaned,
        previous=before,
        expires_at=expires_at,
        created_by=viewer.label,
    )
    await outbox.record(
        organization_id=viewer.organization_id,
        customer_id=cid,
        events=_change_event(row, score=shown, level=shown_level, reason=f"override: {cleaned}"),
        actor=viewer.label,
    )
    row.score, row.level, row.override_id, row.changed_at = shown, shown_level, override.id, now
    await row.save(update_fields=["score", "level", "override_id", "changed_at"])
    after = {"score": shown, "level": shown_level, "expiresAt": expires_at.isoformat()}
    await audit.record(
        viewer=viewer,
        action="health.override_set",
        target_type="customer",
        target_id=cid,
        before=before,
        after=after,
        reason=cleaned,
    )
    return override, before, after


async def clear_override(
    viewer: Viewer, *, customer_id: str, now: datetime
) -> tuple[HealthOverride, dict[str, Any], dict[str, Any]]:
    """End a customer's active override now; the computed score shows again."""
    viewer.require(Role.ADMIN, Role.CSM)
    cid = viewer.customer_scope(customer_id)
    row = await _locked_score(viewer, cid)
    override = await scoped(HealthOverride, viewer).filter(customer_id=cid, ended_at=None).first()
    if override is None:
        raise Conflict("This customer's score has no active override.", customer=str(cid))
    before = {"score": row.score, "level": row.level}
    override.ended_at, override.ended_by = now, viewer.label
    await override.save(update_fields=["ended_at", "ended_by"])
    await _restore([row], now=now, actor=viewer.label)
    after = {"score": row.score, "level": row.level}
    await audit.record(
        viewer=viewer,
        action="health.override_cleared",
        target_type="customer",
        target_id=cid,
        before=before,
        after=after,
        reason=override.reason,
    )
    return override, before, after


async def _restore(rows: list[HealthScore], *, now: datetime, actor: str) -> None:
    events: dict[uuid.UUID, list[tuple[str, dict[str, Any]]]] = {}
    for row in rows:
        cid = row.customer_id  # type: ignore[attr-defined]
        if row.score != row.computed_score or row.level != row.computed_level:
            events[cid] = _change_event(
                row, score=row.computed_score, level=row.computed_level,
                reason="override ended",
            )  # fmt: skip
        row.score, row.level, row.override_id, row.changed_at = (
            row.computed_score, row.computed_level, None, now,
        )  # fmt: skip
        await row.save(update_fields=["score", "level", "override_id", "changed_at"])
    if rows and events:
        await outbox.record_many(
            organization_id=rows[0].organization_id,  # type: ignore[attr-defined]
            events=events,
            actor=actor,
        )


async def expire_overrides(*, now: datetime, limit: int = 1000) -> list[HealthOverride]:
    """End overrides past their expiry and restore the computed scores (worker, any org)."""
    conn = get_connection("default")
    ended = await conn.execute_query_dict(
        "UPDATE health_override SET ended_at = $1, ended_by = 'expiry' WHERE id IN ("
        "SELECT id FROM health_override WHERE ended_at IS NULL AND expires_at <= $1 "
        "ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED) RETURNING id",
        [now, limit],
    )
    if not ended:
        return []
    overrides = await HealthOverride.filter(id__in=[r["id"] for r in ended])
    rows = await HealthScore.filter(override_id__in=[o.id for o in overrides]).select_for_update()
    by_org: dict[uuid.UUID, list[HealthScore]] = defaultdict(list)
    for row in rows:
        by_org[row.organization_id].append(row)  # type: ignore[attr-defined]
    for org_rows in by_org.values():
        await _restore(org_rows, now=now, actor="system:expiry")
    return list(overrides)
