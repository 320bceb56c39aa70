"""Audit entries: who did what to which object, when, with the state before and after."""

from __future__ import annotations

from typing import Any

from tortoise import fields
from tortoise.models import Model


class AuditEntry(Model):
    """One administrative action; rows are only ever inserted."""

    id = fields.BigIntField(primary_key=True)
    organization: fields.ForeignKeyRelation[Any] = fields.ForeignKeyField(
        "liftoff.Organization", related_name="audit_entries", on_delete=fields.CASCADE
    )
    actor = fields.CharField(max_length=254)
    actor_role = fields.CharField(max_length=16)
    action = fields.CharField(max_length=64)
    target_type = fields.CharField(max_length=64)
    target_id = fields.CharField(max_length=200, null=True)
    before: fields.Field[Any] = fields.JSONField(null=True)
    after: fields.Field[Any] = fields.JSONField(null=True)
    reason = fields.TextField(null=True)
    request_id = fields.CharField(max_length=128, null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "audit_entry"
        indexes = (("organization_id", "created_at"), ("organization_id", "action"))
