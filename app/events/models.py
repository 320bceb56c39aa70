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
    sequence = fields.BigIntField(default=0)
    type = fields.CharField(max_length=64)
    payload: fields.Field[dict[str, Any]] = fields.JSONField(default=dict)
    created_at = fields.DatetimeField(auto_now_add=True)
    published_at = fields.DatetimeField(null=True, db_index=True)

    class Meta:
        table = "outbox_event"
        indexes = (("organization", "customer_id", "sequence"),)
