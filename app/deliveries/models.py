"""Webhook endpoints and durable deliveries (emails and webhooks) with their attempts."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from tortoise import fields
from tortoise.models import Model


class DeliveryKind(StrEnum):
    EMAIL = "EMAIL"
    WEBHOOK = "WEBHOOK"


class DeliveryStatus(StrEnum):
    PENDING = "PENDING"
    SUCCEEDED = "SUCCEEDED"
    DEAD = "DEAD"  # retries exhausted or refused: the dead letter, replayable
    DISABLED = "DISABLED"  # the endpoint answered 410 Gone or was disabled


class WebhookEndpoint(Model):
    """Where an organization wants webhooks, with the secret that signs them."""

    id = fields.UUIDField(primary_key=True)
    organization: fields.ForeignKeyRelation[Any] = fields.ForeignKeyField(
        "liftoff.Organization", related_name="webhook_endpoints", on_delete=fields.CASCADE
    )
    url = fields.CharField(max_length=2000)
    description = fields.CharField(max_length=200, default="")
    event_types: fields.Field[list[str]] = fields.JSONField(default=list)
    secret = fields.CharField(max_length=100)
    previous_secret = fields.CharField(max_length=100, null=True)
    previous_secret_expires_at = fields.DatetimeField(null=True)
    enabled = fields.BooleanField(default=True)
    disabled_reason = fields.CharField(max_length=300, null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "webhook_endpoint"


class Delivery(Model):
    """One message on its way out: claimed by a worker with SKIP LOCKED, retried on schedule.

    `message_id` stays the same across retries and replays, so receivers can deduplicate.
    """

    id = fields.UUIDField(primary_key=True)
    organization: fields.ForeignKeyRelation[Any] = fields.ForeignKeyField(
        "liftoff.Organization", related_name="deliveries", on_delete=fields.CASCADE
    )
    kind = fields.CharEnumField(DeliveryKind, max_length=16)
    message_id = fields.CharField(max_length=64)
    action_id = fields.UUIDField(null=True)
    endpoint: fields.ForeignKeyNullableRelation[WebhookEndpoint] = fields.ForeignKeyField(
        "liftoff.WebhookEndpoint", related_name="deliveries", null=True, on_delete=fields.CASCADE
    )
    customer_id = fields.UUIDField(null=True)
    event_type = fields.CharField(max_length=64)
    recipient = fields.CharField(max_length=2000)
    subject = fields.CharField(max_length=500, null=True)
    payload: fields.Field[dict[str, Any]] = fields.JSONField()
    status = fields.CharEnumField(DeliveryStatus, max_length=16, default=DeliveryStatus.PENDING)
    attempts = fields.IntField(default=0)
    next_attempt_at = fields.DatetimeField()
    transport = fields.CharField(max_length=16, null=True)
    last_error = fields.TextField(null=True)
    last_status_code = fields.IntField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    delivered_at = fields.DatetimeField(null=True)

    class Meta:
        table = "delivery"
        unique_together = (("organization_id", "message_id"),)
        indexes = (
            ("endpoint_id",),
            ("status", "next_attempt_at"),
            ("organization_id", "kind", "created_at"),
        )
