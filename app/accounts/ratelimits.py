"""Per-organization rate-limit budgets: an override replaces the server's default for one
organization. Admins of an organization may lower its budgets; raising one above the default
is for whoever runs the server (`liftoff rate-limit`). Each process keeps an organization's
overrides for a few seconds; a change is announced on `access.CHANNEL`."""

from __future__ import annotations

import contextlib
import time
import uuid
from dataclasses import dataclass

from limits import parse

from app.accounts.models import RateLimitOverride, Role
from app.accounts.viewer import Viewer
from app.audit import service as audit
from app.errors import Forbidden, ValidationFailed
from app.kit.tenancy import scoped
from app.settings import Settings

BUDGETS = {
    "reads": "rate_reads",
    "writes": "rate_writes",
    "subscribes": "rate_subscribes",
    "organization": "rate_per_organization",
    "ingest": "rate_ingest",
}
"""Overridable budgets and the setting that holds each one's default. (Per-address and
sign-in budgets protect the server before anyone is known, so they have no override.)"""


@dataclass(frozen=True)
class Budget:
    name: str
    limit: str
    default: str
    overridden: bool
    reason: str | None = None


class OverrideCache:
    """Per-process overrides by organization, trusted for `seconds`."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.entries: dict[uuid.UUID, tuple[float, dict[str, str]]] = {}

    def get(self, organization_id: uuid.UUID) -> dict[str, str] | None:
        found = self.entries.get(organization_id)
        if found is None or found[0] < time.monotonic():
            return None
        return found[1]

    def put(self, organization_id: uuid.UUID, overrides: dict[str, str]) -> None:
        if len(self.entries) > 10_000:
            self.entries.clear()
        self.entries[organization_id] = (time.monotonic() + self.seconds, overrides)

    def forget(self, organization_id: str | uuid.UUID) -> None:
        with contextlib.suppress(ValueError):
            self.entries.pop(uuid.UUID(str(organization_id)), None)


CACHE = OverrideCache(seconds=10.0)


async def overrides_of(organization_id: uuid.UUID) -> dict[str, str]:
    """`{budget: limit}` of the organization's overrides (cached)."""
    found = CACHE.get(organization_id)
    if found is None:
        rows = await RateLimitOverride.filter(organization_id=organization_id).values_list(
            "budget", "limit"
        )
        found = {str(budget): str(limit) for budget, limit in rows}
        CACHE.put(organization_id, found)
    return found


def per_second(text: str) -> float:
    item = parse(text)
    return float(item.amount) / float(item.get_expiry())


def check_limit(text: str) -> str:
    """A budget in `limits` notation (`600/minute`, `10 per second`), or VALIDATION_FAILED."""
    cleaned = text.strip()
    try:
        item = parse(cleaned)
    except ValueError:
        item = None
    if item is None or len(cleaned) > 64 or item.amount < 1:
        raise ValidationFailed(
            "`limit` must be a budget such as `600/minute` or `10/second`.", field="limit"
        )
    return cleaned


def _name(budget: str) -> str:
    name = budget.strip().lower()
    if name not in BUDGETS:
        raise ValidationFailed(
            f"`budget` must be one of {', '.join(sorted(BUDGETS))}.", field="budget"
        )
    return name


async def budgets(viewer: Viewer, settings: Settings) -> list[Budget]:
    """The organization's budgets as they apply now (ADMIN)."""
    viewer.require(Role.ADMIN)
    rows = {r.budget: r for r in await scoped(RateLimitOverride, viewer)}
    found = []
    for name, setting in BUDGETS.items():
        default = str(getattr(settings, setting))
        row = rows.get(name)
        found.append(
            Budget(
                name=name,
                limit=row.limit if row else default,
                default=default,
                overridden=row is not None,
                reason=row.reason if row else None,
            )
        )
    return found


async def set_override(
    viewer: Viewer,
    settings: Settings,
    *,
    budget: str,
    limit: str | None,
    reason: str | None = None,
    allow_raise: bool = False,
) -> Budget:
    """Set (or, with `limit` None, remove) the organization's own budget (ADMIN, audited).
    Above the server's default only with `allow_raise` (the server's operator)."""
    viewer.require(Role.ADMIN)
    name = _name(budget)
    default = str(getattr(settings, BUDGETS[name]))
    row = await scoped(RateLimitOverride, viewer).select_for_update().get_or_none(budget=name)
    before = {"limit": row.limit} if row else None
    if limit is None:
        if row is not None:
            await row.delete()
        after = None
    else:
        text = check_limit(limit)
        if not allow_raise and per_second(text) > per_second(default):
            raise Forbidden(
                f"An organization's admins may lower its `{name}` budget (default {default}) "
                "but not raise it; ask whoever runs this server (`liftoff rate-limit`).",
            )
        if row is None:
            row = RateLimitOverride(organization_id=viewer.organization_id, budget=name)
        row.limit, row.set_by = text, viewer.subject
        row.reason = reason  # type: ignore[assignment]
        await row.save()
        after = {"limit": text}
    await audit.record(
        viewer=viewer,
        action="rate_limit.set" if after else "rate_limit.cleared",
        target_type="rate_limit",
        target_id=name,
        before=before,
        after=after,
        reason=reason,
    )
    CACHE.forget(viewer.organization_id)
    return Budget(
        name=name,
        limit=after["limit"] if after else default,
        default=default,
        overridden=after is not None,
        reason=reason if after else None,
    )
