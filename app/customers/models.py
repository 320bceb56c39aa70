"""Customers of an organization."""

from __future__ import annotations

from typing import Any

from tortoise import fields
from tortoise.fields.db_defaults import SqlDefault
from tortoise.models import Model

from app.onboarding.states import WorkflowStatus


class Customer(Model):
    """One of the organization's customers, going through onboarding."""

    id = fields.UUIDField(primary_key=True)
    organization: fields.ForeignKeyRelation[Any] = fields.ForeignKeyField(
        "liftoff.Organization", related_name="customers", on_delete=fields.CASCADE
    )
    external_id = fields.CharField(max_length=200, null=True)
    email = fields.CharField(max_length=254)
    name = fields.CharField(max_length=200)
    company = fields.CharField(max_length=200, null=True)
    user_type = fields.CharField(max_length=64, default="standard")
    acquisition_channel = fields.CharField(max_length=64, default="direct")
    tags: fields.Field[list[str]] = fields.JSONField(default=list)
    properties: fields.Field[dict[str, Any]] = fields.JSONField(
        default=dict, db_default=SqlDefault("'{}'::jsonb")
    )
    signed_up_at = fields.DatetimeField()
    workflow_status = fields.CharEnumField(
        WorkflowStatus,
        max_length=16,
        default=WorkflowStatus.ACTIVE,
        db_default=WorkflowStatus.ACTIVE.value,
        description="Its workflow's status, kept here by the engine so lists filter on one index.",
    )
    created_at = fields.DatetimeField(auto_now_add=True, db_index=True)

    class Meta:
        table = "customer"
        unique_together = (("organization_id", "email"), ("organization_id", "external_id"))
        # Each list order and filter walks one of these in (created_at, id) order: the id
        # breaks ties of created_at (a bulk import shares one), so a page and its keyset cursor
        # are index conditions with no sort above them; counts read them index-only. The
        # unfiltered one, (organization_id, created_at, id) INCLUDE (search_text), is made by
        # migration 0030 (Tortoise indexes have no INCLUDE): a search walks it index-only.
        # `search_text` (lower(name) || '\x1f' || lower(email)) is a column PostgreSQL
        # generates, not a field: Tortoise never writes it (see app/customers/listing.py).
        indexes = (
            ("organization_id", "user_type", "created_at", "id"),
            ("organization_id", "acquisition_channel", "created_at", "id"),
            ("organization_id", "workflow_status", "created_at", "id"),
        )
