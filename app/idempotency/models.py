"""Idempotency keys of mutations: the first answer to a key, kept per subject for a day."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from tortoise import fields
from tortoise.models import Model


class KeyState(StrEnum):
    IN_PROGRESS = "IN_PROGRESS"
    DONE = "DONE"


class IdempotencyKey(Model):
    """One `Idempotency-Key` of one subject: the request it named and, once answered, the
    answer. `applied` is set inside the mutation's own transaction, so a row whose answer was
    lost still tells whether the change was committed."""

    id = fields.BigIntField(primary_key=True)
    organization: fields.ForeignKeyRelation[Any] = fields.ForeignKeyField(
        "liftoff.Organization", related_name="idempotency_keys", on_delete=fields.CASCADE
    )
    subject = fields.CharField(max_length=254)
    key = fields.CharField(max_length=255)
    fingerprint = fields.CharField(max_length=64)
    state = fields.CharEnumField(KeyState, max_length=16, default=KeyState.IN_PROGRESS)
    applied = fields.BooleanField(default=False)
    owner = fields.UUIDField()
    status_code = fields.IntField(null=True)
    response: fields.Field[Any] = fields.JSONField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    locked_until = fields.DatetimeField()
    expires_at = fields.DatetimeField()

    class Meta:
        table = "idempotency_key"
        unique_together = (("organization_id", "subject", "key"),)
        indexes = (("expires_at",),)
