"""GraphQL types of milestones."""

from __future__ import annotations

from datetime import datetime
from typing import cast

import strawberry
from strawberry.scalars import JSON

from app.graphql.context import Context
from app.graphql.onboarding.types import Badge
from app.milestones.models import MilestoneSet as MilestoneSetRow
from app.milestones.service import MilestoneView
from app.milestones.stats import MilestoneStat, SegmentStat

Info = strawberry.Info[Context, None]


@strawberry.type(description="What reaching a milestone earns: points and/or a badge.")
class MilestoneReward:
    points: int
    badge: Badge | None


@strawberry.type(description="One milestone for one customer: how far, what is missing, when.")
class MilestoneProgress:
    key: str
    name: str
    description: str
    icon: str | None
    repeatable: bool = strawberry.field(description="Achieved again at every multiple.")
    criteria: JSON = strawberry.field(description="The criteria as defined, with `match`.")
    reward: MilestoneReward
    current: float = strawberry.field(description="The value reached (criteria met, if several).")
    target: float = strawberry.field(
        description="The value that achieves it (next, if repeatable)."
    )
    percent: float = strawberry.field(description="0-100.")
    missing: str = strawberry.field(description="What is still missing, in words; empty when done.")
    achieved: bool
    achieved_at: datetime | None = strawberry.field(description="When first achieved.")
    last_achieved_at: datetime | None
    times_achieved: int

    @classmethod
    def of(cls, v: MilestoneView) -> MilestoneProgress:
        m, p = v.milestone, v.progress
        badge = m.reward.badge
        return cls(
            key=m.key,
            name=m.name,
            description=m.description,
            icon=m.icon,
            repeatable=m.repeatable,
            criteria=cast(
                JSON,
                {
                    "match": m.match,
                    "criteria": [c.model_dump(exclude_none=True) for c in m.criteria],
                },
            ),
            reward=MilestoneReward(
                points=m.reward.points,
                badge=Badge.of(badge.model_dump()) if badge else None,
            ),
            current=p.current,
            target=p.target,
            percent=p.percent,
            missing=p.missing,
            achieved=v.times > 0,
            achieved_at=v.achieved_at,
            last_achieved_at=v.last_achieved_at,
            times_achieved=v.times,
        )


@strawberry.type(description="One installed version of the organization's milestones.")
class MilestoneSet:
    id: strawberry.ID
    version: int
    name: str
    milestone_count: int
    definition: JSON
    created_by: str | None
    created_at: datetime

    @classmethod
    def of(cls, row: MilestoneSetRow) -> MilestoneSet:
        return cls(
            id=strawberry.ID(str(row.id)),
            version=row.version,
            name=row.name,
            milestone_count=len(row.definition.get("milestones") or ()),
            definition=cast(JSON, row.definition),
            created_by=row.created_by,
            created_at=row.created_at,
        )


@strawberry.type(description="A milestone in one segment of customers.")
class MilestoneSegmentStat:
    label: str
    customers: int
    achieved: int
    rate: float | None = strawberry.field(description="Share 0-1 of the segment's customers.")
    median_days_to_achieve: float | None = strawberry.field(description="From signup.")
    p90_days_to_achieve: float | None

    @classmethod
    def of(cls, s: SegmentStat) -> MilestoneSegmentStat:
        return cls(
            label=s.label,
            customers=s.customers,
            achieved=s.achieved,
            rate=s.rate,
            median_days_to_achieve=s.median_days,
            p90_days_to_achieve=s.p90_days,
        )


@strawberry.type(description="How often and how fast one milestone is achieved.")
class MilestoneStats:
    key: str
    name: str
    overall: MilestoneSegmentStat
    by_user_type: list[MilestoneSegmentStat]
    by_acquisition_channel: list[MilestoneSegmentStat]

    @classmethod
    def of(cls, s: MilestoneStat) -> MilestoneStats:
        return cls(
            key=s.key,
            name=s.name,
            overall=MilestoneSegmentStat.of(s.overall),
            by_user_type=[MilestoneSegmentStat.of(x) for x in s.by_user_type],
            by_acquisition_channel=[MilestoneSegmentStat.of(x) for x in s.by_acquisition_channel],
        )
