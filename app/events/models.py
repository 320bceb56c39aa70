"""The transactional outbox: domain events written with the state change they describe."""

from __future__ import annotations

from typing import Any

from tortoise import fields
from tortoise.models import Model


class OutboxEvent(Model):
    """A domain event, recorded in the same transaction as its state change."""

    id = fields.BigIntField(primary_key=True)
    organization: fields.ForeignKeyRelation[Any] = fields.ForeignKeyField(
        "liftoff.Organization", related_name="events", on_delete=fields.CASCADE
    )
    customer_id = fields.UUIDField(null=True)
    stream = fields.UUIDField()
    sequence = fields.BigIntField()
    type = fields.CharField(max_length=64)
    payload: fields.Field[dict[str, Any]] = fields.JSONField(default=dict)
    actor = fields.CharField(max_length=200, null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    published_at = fields.DatetimeField(null=True, db_index=True)

    class Meta:
        table = "outbox_event"
        unique_together = (("organization_id", "stream", "sequence"),)


class EventStream(Model):
    """The last sequence number handed out per stream (a customer, or the organization)."""

    id = fields.UUIDField(primary_key=True)
    organization: fields.ForeignKeyRelation[Any] = fields.ForeignKeyField(
        "liftoff.Organization", related_name="event_streams", on_delete=fields.CASCADE
    )
    last_sequence = fields.BigIntField(default=0)

    class Meta:
        table = "event_stream"
