"""How milestones are achieved: rate, median and p90 days from signup to the first
achievement, overall and by user type and acquisition channel (two queries)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from tortoise.connection import get_connection

from app.accounts.models import Role
from app.accounts.viewer import Viewer
from app.milestones.service import current_set

_ACHIEVED = """WITH a AS (
  SELECT customer_id, milestone_key, min(achieved_at) AS at FROM milestone_achievement
  WHERE organization_id = $1 GROUP BY customer_id, milestone_key
), d AS (
  SELECT a.milestone_key, c.user_type, c.acquisition_channel,
    greatest(0, extract(epoch FROM a.at - c.signed_up_at) / 86400.0) AS days
  FROM a JOIN customer c ON c.id = a.customer_id AND c.organization_id = $1
)
SELECT milestone_key, user_type, acquisition_channel,
  GROUPING(user_type) AS gu, GROUPING(acquisition_channel) AS gc, count(*) AS achieved,
  percentile_cont(0.5) WITHIN GROUP (ORDER BY days) AS median,
  percentile_cont(0.9) WITHIN GROUP (ORDER BY days) AS p90
FROM d GROUP BY GROUPING SETS ((milestone_key), (milestone_key, user_type),
  (milestone_key, acquisition_channel))"""
_CUSTOMERS = """SELECT user_type, acquisition_channel, GROUPING(user_type) AS gu,
  GROUPING(acquisition_channel) AS gc, count(*) AS n
FROM customer WHERE organization_id = $1
GROUP BY GROUPING SETS ((), (user_type), (acquisition_channel))"""

OVERALL = ("all", "")


@dataclass(frozen=True)
class SegmentStat:
    """One milestone in one segment of customers."""

    label: str
    customers: int
    achieved: int
    median_days: float | None
    p90_days: float | None

    @property
    def rate(self) -> float | None:
        return None if not self.customers else round(self.achieved / self.customers, 4)


@dataclass
class MilestoneStat:
    key: str
    name: str
    overall: SegmentStat
    by_user_type: list[SegmentStat] = field(default_factory=list)
    by_acquisition_channel: list[SegmentStat] = field(default_factory=list)


def _segment(row: dict[str, object]) -> tuple[str, str]:
    if not row["gu"]:
        return "user_type", str(row["user_type"])
    if not row["gc"]:
        return "acquisition_channel", str(row["acquisition_channel"])
    return OVERALL


def _days(value: object) -> float | None:
    return None if value is None else round(float(value), 2)  # type: ignore[arg-type]


async def milestone_stats(viewer: Viewer) -> list[MilestoneStat]:
    """Per milestone of the current set: achievement rate and days to achieve (operators)."""
    viewer.require(Role.ADMIN, Role.CSM)
    current = await current_set(viewer)
    if current is None:
        return []
    conn = get_connection("default")
    org = viewer.organization_id
    customers = {_segment(r): int(r["n"]) for r in await conn.execute_query_dict(_CUSTOMERS, [org])}
    got: dict[str, dict[tuple[str, str], dict[str, object]]] = defaultdict(dict)
    for r in await conn.execute_query_dict(_ACHIEVED, [org]):
        got[r["milestone_key"]][_segment(r)] = r

    def stat(key: str, segment: tuple[str, str]) -> SegmentStat:
        r = got[key].get(segment, {})
        return SegmentStat(
            label=segment[1] or "all",
            customers=customers.get(segment, 0),
            achieved=int(r.get("achieved") or 0),  # type: ignore[call-overload]
            median_days=_days(r.get("median")),
            p90_days=_days(r.get("p90")),
        )

    segments = sorted(s for s in customers if s != OVERALL)
    return [
        MilestoneStat(
            key=m.key,
            name=m.name,
            overall=stat(m.key, OVERALL),
            by_user_type=[stat(m.key, s) for s in segments if s[0] == "user_type"],
            by_acquisition_channel=[
                stat(m.key, s) for s in segments if s[0] == "acquisition_channel"
            ],
        )
        for m in current.definition.milestones
    ]
