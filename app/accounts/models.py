"""Tenants and the people acting in them."""

from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.fields.db_defaults import SqlDefault
from tortoise.models import Model


class Role(StrEnum):
    ADMIN = "ADMIN"
    CSM = "CSM"
    CUSTOMER = "CUSTOMER"


class Organization(Model):
    """A tenant: the company that onboards its own customers with Liftoff."""

    id = fields.UUIDField(primary_key=True)
    name = fields.CharField(max_length=200)
    slug = fields.CharField(max_length=80, unique=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    event_retention_days = fields.IntField(
        null=True,
        description="Days of usage events kept; null keeps LIFTOFF_EVENT_RETENTION_DAYS.",
    )

    class Meta:
        table = "organization"


class Operator(Model):
    """A member of the organization's team (ADMIN or CSM)."""

    id = fields.UUIDField(primary_key=True)
    organization: fields.ForeignKeyRelation[Organization] = fields.ForeignKeyField(
        "liftoff.Organization", related_name="operators", on_delete=fields.CASCADE
    )
    email = fields.CharField(max_length=254)
    name = fields.CharField(max_length=200)
    role = fields.CharEnumField(Role, max_length=16)
    active = fields.BooleanField(default=True, db_default=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "operator"
        unique_together = (("organization_id", "email"),)


class ApiKey(Model):
    """A server-to-server credential; only its SHA-256 hash is stored."""

    id = fields.UUIDField(primary_key=True)
    organization: fields.ForeignKeyRelation[Organization] = fields.ForeignKeyField(
        "liftoff.Organization", related_name="api_keys", on_delete=fields.CASCADE
    )
    name = fields.CharField(max_length=200)
    prefix = fields.CharField(max_length=16)
    key_hash = fields.CharField(max_length=64, unique=True)
    scopes: fields.Field[list[str]] = fields.JSONField(
        default=list, db_default=SqlDefault("'[]'::jsonb")
    )
    created_by = fields.CharField(max_length=200, null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    last_used_at = fields.DatetimeField(null=True)
    revoked_at = fields.DatetimeField(null=True)

    class Meta:
        table = "api_key"


class TokenSubject(Model):
    """The token version of one subject: tokens minted with an older version are revoked."""

    id = fields.UUIDField(primary_key=True)
    organization: fields.ForeignKeyRelation[Organization] = fields.ForeignKeyField(
        "liftoff.Organization", related_name="token_subjects", on_delete=fields.CASCADE
    )
    subject = fields.CharField(max_length=254)
    version = fields.IntField(default=0)
    revoked_at = fields.DatetimeField(null=True)
    revoked_by = fields.CharField(max_length=254, null=True)

    class Meta:
        table = "token_subject"
        unique_together = (("organization_id", "subject"),)


class RateLimitOverride(Model):
    """An organization's own budget for one rate limit, in place of the server's default."""

    id = fields.UUIDField(primary_key=True)
    organization: fields.ForeignKeyRelation[Organization] = fields.ForeignKeyField(
        "liftoff.Organization", related_name="rate_limit_overrides", on_delete=fields.CASCADE
    )
    budget = fields.CharField(max_length=32)
    limit = fields.CharField(max_length=64)
    reason = fields.TextField(null=True)
    set_by = fields.CharField(max_length=254)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "rate_limit_override"
        unique_together = (("organization_id", "budget"),)
