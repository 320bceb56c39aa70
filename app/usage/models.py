"""Usage events and their per-customer daily rollups.

`usage_event` is range-partitioned by `occurred_at` (one partition per week; older ones per
month, migration 0036). Tortoise
cannot declare partitions, so the migration creates the table with raw SQL; this model
maps it for reads. Ingestion writes it with set-based SQL (`app/usage/storage.py`).
Idempotency keys live in the unpartitioned `usage_event_key` table (raw SQL only),
because a unique constraint on a partitioned table must include the partition key.
"""

from __future__ import annotations

from typing import Any

from tortoise import fields
from tortoise.models import Model


class UsageEvent(Model):
    """One raw event a product reported for one customer (partitioned by week)."""

    id = fields.BigIntField(primary_key=True)
    organization_id = fields.UUIDField()
    customer_id = fields.UUIDField()
    name = fields.CharField(max_length=64)
    occurred_at = fields.DatetimeField()
    received_at = fields.DatetimeField()
    idempotency_key = fields.CharField(max_length=200)
    properties: fields.Field[dict[str, Any]] = fields.JSONField(default=dict)

    class Meta:
        table = "usage_event"


class UsageDaily(Model):
    """How often a customer did one thing on one UTC day; kept current as events arrive."""

    id = fields.BigIntField(primary_key=True)
    organization: fields.ForeignKeyRelation[Any] = fields.ForeignKeyField(
        "liftoff.Organization",
        related_name="usage_days",
        on_delete=fields.CASCADE,
        db_constraint=False,
    )
    customer: fields.ForeignKeyRelation[Any] = fields.ForeignKeyField(
        "liftoff.Customer",
        related_name="usage_days",
        on_delete=fields.CASCADE,
        db_constraint=False,
    )
    day = fields.DateField()
    name = fields.CharField(max_length=64)
    count = fields.BigIntField(default=0)
    first_at = fields.DatetimeField()
    last_at = fields.DatetimeField()

    class Meta:
        table = "usage_daily"
        unique_together = (("organization_id", "customer_id", "day", "name"),)
        indexes = (("organization_id", "day", "name"),)
