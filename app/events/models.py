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
    trace: fields.Field[dict[str, str] | None] = fields.JSONField(null=True)
    """The request id and W3C traceparent of the request that caused the event."""
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


class ConsumerCheckpoint(Model):
    """How far one consumer of the outbox got: every event below (last_tx, last_id) is done.

    Events are read in (transaction id, event id) order and only from transactions older
    than the oldest one still running, so an event committed late is never skipped.
    """

    name = fields.CharField(max_length=64, primary_key=True)
    last_tx = fields.BigIntField(default=0)
    last_id = fields.BigIntField(default=0)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "consumer_checkpoint"


class ConsumerFailure(Model):
    """An event a consumer could not handle after its retries; it was skipped and kept here."""

    id = fields.BigIntField(primary_key=True)
    consumer = fields.CharField(max_length=64)
    event_id = fields.BigIntField()
    organization_id = fields.UUIDField()
    event_type = fields.CharField(max_length=64)
    error = fields.TextField()
    attempts = fields.IntField()
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "consumer_failure"
        unique_together = (("consumer", "event_id"),)


class ScheduleRun(Model):
    """When a periodic job last started and finished; claiming a run updates this row, so
    each period's run happens in one worker however many run."""

    name = fields.CharField(max_length=64, primary_key=True)
    last_started_at = fields.DatetimeField(null=True)
    last_finished_at = fields.DatetimeField(null=True)
    last_error = fields.TextField(null=True)

    class Meta:
        table = "schedule_run"
