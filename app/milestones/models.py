"""Persistence of milestone sets (versioned per organization) and of achievements."""

from __future__ import annotations

from typing import Any

from tortoise import fields
from tortoise.models import Model


class MilestoneSet(Model):
    """One version of an organization's milestones; the newest one is evaluated."""

    id = fields.UUIDField(primary_key=True)
    organization: fields.ForeignKeyRelation[Any] = fields.ForeignKeyField(
        "liftoff.Organization", related_name="milestone_sets", on_delete=fields.CASCADE
    )
    version = fields.IntField()
    name = fields.CharField(max_length=200)
    definition: fields.Field[dict[str, Any]] = fields.JSONField()
    created_by = fields.CharField(max_length=200, null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "milestone_set"
        unique_together = (("organization_id", "version"),)


class MilestoneAchievement(Model):
    """A customer reached a milestone (its `occurrence`-th time when repeatable).

    The unique key makes recording it once a property of the database: concurrent
    evaluations insert with ON CONFLICT DO NOTHING and only the one that inserted awards.
    """

    id = fields.BigIntField(primary_key=True)
    organization: fields.ForeignKeyRelation[Any] = fields.ForeignKeyField(
        "liftoff.Organization", related_name="milestone_achievements", on_delete=fields.CASCADE
    )
    customer: fields.ForeignKeyRelation[Any] = fields.ForeignKeyField(
        "liftoff.Customer", related_name="milestone_achievements", on_delete=fields.CASCADE
    )
    milestone_key = fields.CharField(max_length=80)
    occurrence = fields.IntField(default=1)
    set_version = fields.IntField()
    name = fields.CharField(max_length=200)
    value = fields.FloatField(description="The criterion's value when it was reached.")
    points = fields.IntField(default=0)
    badge: fields.Field[dict[str, Any] | None] = fields.JSONField(null=True)
    achieved_at = fields.DatetimeField()

    class Meta:
        table = "milestone_achievement"
        unique_together = (("organization_id", "customer_id", "milestone_key", "occurrence"),)
        indexes = (
            ("customer_id",),
            ("organization_id", "milestone_key", "achieved_at"),
        )
