"""Rollups of onboarding analytics, each customer's last contribution, and export jobs."""

from __future__ import annotations

from typing import Any

from tortoise import fields
from tortoise.models import Model

from app.analytics.histogram import BUCKETS, WEEKS
from app.analytics.rules import bucket_columns


def histogram(namespace: dict[str, Any], name: str, size: int) -> None:
    """Declare a histogram in a model's class body: one integer column per bucket. A read
    sums plain columns, which costs PostgreSQL a fraction of subscripting an array column
    in every row, and an upsert adds them without rebuilding an array."""
    for column in bucket_columns(name, size):
        namespace[column] = fields.IntField(default=0, db_default=0)


class AnalyticsCustomer(Model):
    """What one customer currently contributes to the rollups (to subtract on its next change)."""

    id = fields.UUIDField(primary_key=True, description="The customer's id.")
    organization: fields.ForeignKeyRelation[Any] = fields.ForeignKeyField(
        "liftoff.Organization", related_name="analytics_customers", on_delete=fields.CASCADE
    )
    contribution: fields.Field[dict[str, Any]] = fields.JSONField()
    active = fields.BooleanField()
    last_activity_at = fields.DatetimeField()
    updated_at = fields.DatetimeField()

    class Meta:
        table = "analytics_customer"
        indexes = (
            ("organization_id", "active", "last_activity_at"),
            ("active", "last_activity_at"),
        )


class CohortCounts(Model):
    """The segment, headline counts and histograms of a signup cell (daily and weekly)."""

    user_type = fields.CharField(max_length=64)
    channel = fields.CharField(max_length=64)
    template_version = fields.IntField()
    customers = fields.IntField(default=0)
    started = fields.IntField(default=0)
    completed = fields.IntField(default=0)
    active = fields.IntField(default=0)
    points = fields.BigIntField(default=0)
    badges = fields.IntField(default=0)
    histogram(locals(), "done_hist", BUCKETS)  # time from signup to completion, by bucket
    histogram(locals(), "done_weeks", WEEKS)  # completions by weeks after the signup week

    class Meta:
        abstract = True


COHORT_KEY = ("organization_id", "day", "user_type", "channel", "template_version")


class CohortRollup(CohortCounts):
    """Customers who signed up on one day in one segment: headline counts and histograms."""

    id = fields.BigIntField(primary_key=True)
    organization: fields.ForeignKeyRelation[Any] = fields.ForeignKeyField(
        "liftoff.Organization", related_name="analytics_cohorts", on_delete=fields.CASCADE
    )
    day = fields.DateField(description="Signup day (UTC).")

    class Meta:
        table = "analytics_cohort"
        unique_together = (COHORT_KEY,)


class CohortWeekRollup(CohortCounts):
    """The cohort rollup summed by signup week (`day` is its Monday)."""

    id = fields.BigIntField(primary_key=True)
    organization: fields.ForeignKeyRelation[Any] = fields.ForeignKeyField(
        "liftoff.Organization", related_name="analytics_cohort_weeks", on_delete=fields.CASCADE
    )
    day = fields.DateField(description="Monday of the signup week (UTC).")

    class Meta:
        table = "analytics_cohort_week"
        unique_together = (COHORT_KEY,)


STEP_KEY = (
    "organization_id",
    "day",
    "user_type",
    "channel",
    "template_version",
    "stage_key",
    "task_key",
    "position",
)
"""The unique key of a funnel rollup row."""


class StepCounts(Model):
    """The segment, step and counters of a funnel rollup row (daily and weekly tables)."""

    user_type = fields.CharField(max_length=64)
    channel = fields.CharField(max_length=64)
    template_version = fields.IntField()
    stage_key = fields.CharField(max_length=80)
    task_key = fields.CharField(max_length=80)
    position = fields.IntField()
    reached = fields.IntField(default=0)
    completed = fields.IntField(default=0)
    skipped = fields.IntField(default=0)
    failed = fields.IntField(default=0)
    here = fields.IntField(default=0)
    dropped = fields.IntField(default=0)
    histogram(locals(), "time_hist", BUCKETS)  # time spent until completed, by bucket

    class Meta:
        abstract = True


class StepRollup(StepCounts):
    """Funnel counts of one stage (task_key '') or task for one signup day and segment."""

    id = fields.BigIntField(primary_key=True)
    organization: fields.ForeignKeyRelation[Any] = fields.ForeignKeyField(
        "liftoff.Organization", related_name="analytics_steps", on_delete=fields.CASCADE
    )
    day = fields.DateField(description="Signup day (UTC).")

    class Meta:
        table = "analytics_step"
        unique_together = (STEP_KEY,)


class StepWeekRollup(StepCounts):
    """The step rollup summed by signup week (`day` is its Monday): a period's whole weeks
    are read here, only its partial weeks at either end from the daily rows."""

    id = fields.BigIntField(primary_key=True)
    organization: fields.ForeignKeyRelation[Any] = fields.ForeignKeyField(
        "liftoff.Organization", related_name="analytics_step_weeks", on_delete=fields.CASCADE
    )
    day = fields.DateField(description="Monday of the signup week (UTC).")

    class Meta:
        table = "analytics_step_week"
        unique_together = (STEP_KEY,)


FLIGHT_KEY = ("organization_id", "day", "user_type", "channel", "template_version", "stage_key")


class FlightRollup(Model):
    """Customers in one stage now, per signup day and segment, by time from signup to entering
    it: the in-flight side of the forecast's per-stage survival tables, kept apart from the
    funnel rows so a period's read touches few pages."""

    id = fields.BigIntField(primary_key=True)
    organization: fields.ForeignKeyRelation[Any] = fields.ForeignKeyField(
        "liftoff.Organization", related_name="analytics_flights", on_delete=fields.CASCADE
    )
    day = fields.DateField(description="Signup day (UTC).")
    user_type = fields.CharField(max_length=64)
    channel = fields.CharField(max_length=64)
    template_version = fields.IntField()
    stage_key = fields.CharField(max_length=80)
    histogram(locals(), "here_hist", BUCKETS)  # customers by time from signup to entering it

    class Meta:
        table = "analytics_flight"
        unique_together = (FLIGHT_KEY,)


class CompletionRollup(Model):
    """Workflows completed on one day, by segment and signup week, with their durations."""

    id = fields.BigIntField(primary_key=True)
    organization: fields.ForeignKeyRelation[Any] = fields.ForeignKeyField(
        "liftoff.Organization", related_name="analytics_completions", on_delete=fields.CASCADE
    )
    day = fields.DateField(description="Completion day (UTC).")
    user_type = fields.CharField(max_length=64)
    channel = fields.CharField(max_length=64)
    template_version = fields.IntField()
    signup_week = fields.DateField()
    completions = fields.IntField(default=0)
    histogram(locals(), "done_hist", BUCKETS)  # time from signup to completion, by bucket

    class Meta:
        table = "analytics_completion"
        unique_together = (
            ("organization_id", "day", "user_type", "channel", "template_version", "signup_week"),
        )


class CompletionDayRollup(Model):
    """The completion rollup summed over signup weeks: what trends read when the filter names
    no signup cohort (its rows follow days x segments, not how far back signups go)."""

    id = fields.BigIntField(primary_key=True)
    organization: fields.ForeignKeyRelation[Any] = fields.ForeignKeyField(
        "liftoff.Organization", related_name="analytics_completion_days", on_delete=fields.CASCADE
    )
    day = fields.DateField(description="Completion day (UTC).")
    user_type = fields.CharField(max_length=64)
    channel = fields.CharField(max_length=64)
    template_version = fields.IntField()
    completions = fields.IntField(default=0)
    histogram(locals(), "done_hist", BUCKETS)  # time from signup to completion, by bucket

    class Meta:
        table = "analytics_completion_day"
        unique_together = (("organization_id", "day", "user_type", "channel", "template_version"),)


class ExportJob(Model):
    """An analytics export: what was asked, by whom, how far it got, and its file."""

    id = fields.UUIDField(primary_key=True)
    organization: fields.ForeignKeyRelation[Any] = fields.ForeignKeyField(
        "liftoff.Organization", related_name="analytics_exports", on_delete=fields.CASCADE
    )
    requested_by = fields.CharField(max_length=200)
    format = fields.CharField(max_length=8)
    sections: fields.Field[list[str]] = fields.JSONField()
    criteria: fields.Field[dict[str, Any]] = fields.JSONField(description="The analytics filter.")
    status = fields.CharField(max_length=16, default="PENDING")
    progress = fields.FloatField(default=0.0)
    row_count = fields.BigIntField(default=0)
    payload: fields.Field[dict[str, Any] | None] = fields.JSONField(
        null=True, description="The sections' data, as the analytics query returned it."
    )
    content = fields.BinaryField(null=True)
    filename = fields.CharField(max_length=200, default="")
    content_type = fields.CharField(max_length=100, default="")
    error = fields.TextField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    claimed_at = fields.DatetimeField(null=True)
    finished_at = fields.DatetimeField(null=True)

    class Meta:
        table = "analytics_export"
        indexes = (("status", "created_at"),)
