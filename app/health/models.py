"""Persistence of health models, current scores, snapshots, overrides and recompute jobs."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from tortoise import fields
from tortoise.models import Model


class HealthModel(Model):
    """One version of an organization's health model; the newest one scores."""

    id = fields.UUIDField(primary_key=True)
    organization: fields.ForeignKeyRelation[Any] = fields.ForeignKeyField(
        "liftoff.Organization", related_name="health_models", on_delete=fields.CASCADE
    )
    version = fields.IntField()
    name = fields.CharField(max_length=200)
    definition: fields.Field[dict[str, Any]] = fields.JSONField()
    created_by = fields.CharField(max_length=200, null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "health_model"
        unique_together = (("organization_id", "version"),)


class HealthScore(Model):
    """A customer's current score; `score`/`level` include an active override."""

    id = fields.UUIDField(primary_key=True)
    organization: fields.ForeignKeyRelation[Any] = fields.ForeignKeyField(
        "liftoff.Organization", related_name="health_scores", on_delete=fields.CASCADE
    )
    customer: fields.ForeignKeyRelation[Any] = fields.ForeignKeyField(
        "liftoff.Customer", related_name="health_scores", on_delete=fields.CASCADE
    )
    score = fields.FloatField()
    level = fields.CharField(max_length=16)
    computed_score = fields.FloatField()
    computed_level = fields.CharField(max_length=16)
    confidence = fields.FloatField()
    components: fields.Field[list[list[Any]]] = fields.JSONField(default=list)
    facts: fields.Field[dict[str, Any]] = fields.JSONField(default=dict)
    segment = fields.CharField(max_length=64)
    channel = fields.CharField(
        max_length=64,
        default="",
        db_default="",
        description="The customer's acquisition channel, for the summary's channel filter.",
    )
    model_version = fields.IntField()
    override_id = fields.UUIDField(null=True)
    computed_at = fields.DatetimeField()
    changed_at = fields.DatetimeField()

    class Meta:
        table = "health_score"
        # customer first: the one key serves a lookup by (organization, customer), an upsert's
        # conflict (either column order matches it) and the customer foreign key, so a
        # rewritten score updates four indexes, not five
        unique_together = (("customer_id", "organization_id"),)
        indexes = (
            ("organization_id", "score", "customer_id"),
            ("organization_id", "level", "score", "customer_id"),
        )


class HealthSummary(Model):
    """How many current scores of an organization fall in one (segment, channel, level,
    tenth of the scale), and their sum: kept by triggers on `health_score` in the transaction
    of every change, so a distribution reads a few rows whatever the number of customers."""

    id = fields.BigIntField(primary_key=True)
    organization: fields.ForeignKeyRelation[Any] = fields.ForeignKeyField(
        "liftoff.Organization", related_name="health_summaries", on_delete=fields.CASCADE
    )
    segment = fields.CharField(max_length=64)
    channel = fields.CharField(max_length=64)
    level = fields.CharField(max_length=16)
    bucket = fields.SmallIntField(description="least(floor(score / 10), 9)")
    customers = fields.IntField(default=0)
    score_sum = fields.DecimalField(max_digits=24, decimal_places=6, default=0)

    class Meta:
        table = "health_summary"
        unique_together = (("organization_id", "segment", "channel", "level", "bucket"),)


class SnapshotKind(StrEnum):
    DAILY = "DAILY"
    LEVEL_CHANGE = "LEVEL_CHANGE"


class HealthSnapshot(Model):
    """A customer's score at a point in time: once a day, and on every level change."""

    id = fields.BigIntField(primary_key=True)
    organization: fields.ForeignKeyRelation[Any] = fields.ForeignKeyField(
        "liftoff.Organization", related_name="health_snapshots", on_delete=fields.CASCADE
    )
    customer: fields.ForeignKeyRelation[Any] = fields.ForeignKeyField(
        "liftoff.Customer", related_name="health_snapshots", on_delete=fields.CASCADE
    )
    day = fields.DateField()
    kind = fields.CharEnumField(SnapshotKind, max_length=16)
    taken_at = fields.DatetimeField()
    score = fields.FloatField()
    level = fields.CharField(max_length=16)
    confidence = fields.FloatField()
    components: fields.Field[list[list[Any]]] = fields.JSONField(default=list)
    facts: fields.Field[dict[str, Any]] = fields.JSONField(default=dict)
    model_version = fields.IntField()

    class Meta:
        table = "health_snapshot"
        unique_together = (("organization_id", "day", "kind", "customer_id", "taken_at"),)
        indexes = (
            ("customer_id",),
            ("organization_id", "customer_id", "taken_at"),
        )


class HealthOverride(Model):
    """A score or level set by hand, with a reason; it lapses by itself at `expires_at`."""

    id = fields.UUIDField(primary_key=True)
    organization: fields.ForeignKeyRelation[Any] = fields.ForeignKeyField(
        "liftoff.Organization", related_name="health_overrides", on_delete=fields.CASCADE
    )
    customer: fields.ForeignKeyRelation[Any] = fields.ForeignKeyField(
        "liftoff.Customer", related_name="health_overrides", on_delete=fields.CASCADE
    )
    score = fields.FloatField(null=True)
    level = fields.CharField(max_length=16, null=True)
    reason = fields.TextField()
    previous: fields.Field[dict[str, Any]] = fields.JSONField(default=dict)
    """The score and level shown before the override."""
    expires_at = fields.DatetimeField()
    created_by = fields.CharField(max_length=200)
    created_at = fields.DatetimeField(auto_now_add=True)
    ended_at = fields.DatetimeField(null=True)
    ended_by = fields.CharField(max_length=200, null=True)

    class Meta:
        table = "health_override"
        indexes = (("customer_id",), ("organization_id", "customer_id"), ("ended_at", "expires_at"))


class HealthNorm(Model):
    """The organization's typical customer, measured at the last full recompute."""

    id = fields.UUIDField(primary_key=True)
    organization: fields.ForeignKeyRelation[Any] = fields.ForeignKeyField(
        "liftoff.Organization", related_name="health_norms", on_delete=fields.CASCADE
    )
    median_events = fields.FloatField()
    median_active_days = fields.FloatField()
    has_usage = fields.BooleanField()
    tracks_support = fields.BooleanField()
    computed_at = fields.DatetimeField()

    class Meta:
        table = "health_norm"
        unique_together = (("organization_id",),)


class JobStatus(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


class HealthJob(Model):
    """An on-demand recompute over all or some customers, with its progress."""

    id = fields.UUIDField(primary_key=True)
    organization: fields.ForeignKeyRelation[Any] = fields.ForeignKeyField(
        "liftoff.Organization", related_name="health_jobs", on_delete=fields.CASCADE
    )
    status = fields.CharEnumField(JobStatus, max_length=16, default=JobStatus.PENDING)
    scope: fields.Field[dict[str, Any]] = fields.JSONField(default=dict)
    total = fields.IntField(default=0)
    done = fields.IntField(default=0)
    changed = fields.IntField(default=0)
    error = fields.TextField(null=True)
    cursor = fields.UUIDField(null=True)
    """The last customer scored, so a job taken over after a crash resumes there."""
    created_by = fields.CharField(max_length=200)
    created_at = fields.DatetimeField(auto_now_add=True)
    started_at = fields.DatetimeField(null=True)
    heartbeat_at = fields.DatetimeField(null=True)
    finished_at = fields.DatetimeField(null=True)

    class Meta:
        table = "health_job"
        indexes = (("status", "created_at"),)


class HealthDailyRun(Model):
    """The daily recompute and snapshot of one organization: claimed once per day."""

    id = fields.UUIDField(primary_key=True)
    organization: fields.ForeignKeyRelation[Any] = fields.ForeignKeyField(
        "liftoff.Organization", related_name="health_daily_runs", on_delete=fields.CASCADE
    )
    day = fields.DateField()
    runner = fields.CharField(max_length=200)
    started_at = fields.DatetimeField()
    finished_at = fields.DatetimeField(null=True)
    customers = fields.IntField(default=0)

    class Meta:
        table = "health_daily_run"
        unique_together = (("organization_id", "day"),)


class HealthPending(Model):
    """A customer whose score must be recomputed once `due_at` has passed (debounce)."""

    id = fields.UUIDField(primary_key=True)
    """The customer's id: one pending row per customer."""
    organization: fields.ForeignKeyRelation[Any] = fields.ForeignKeyField(
        "liftoff.Organization", related_name="health_pending", on_delete=fields.CASCADE
    )
    customer: fields.ForeignKeyRelation[Any] = fields.ForeignKeyField(
        "liftoff.Customer", related_name="health_pending", on_delete=fields.CASCADE
    )
    due_at = fields.DatetimeField(db_index=True)

    class Meta:
        table = "health_pending"
        indexes = (("customer_id",),)
