"""Sign-in state: operator passwords, one-time sign-in links, failed-attempt counters."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model

from app.accounts.models import Operator, Organization
from app.customers.models import Customer


class OperatorPassword(Model):
    """An operator's argon2id password hash (operators without one sign in by link only)."""

    id = fields.UUIDField(primary_key=True)
    operator: fields.OneToOneRelation[Operator] = fields.OneToOneField(
        "liftoff.Operator", related_name="password", on_delete=fields.CASCADE
    )
    organization: fields.ForeignKeyRelation[Organization] = fields.ForeignKeyField(
        "liftoff.Organization", related_name="operator_passwords", on_delete=fields.CASCADE
    )
    hash = fields.CharField(max_length=255)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "operator_password"


class SignInLink(Model):
    """A single-use sign-in link for an operator or a customer; only its SHA-256 is stored."""

    id = fields.UUIDField(primary_key=True)
    organization: fields.ForeignKeyRelation[Organization] = fields.ForeignKeyField(
        "liftoff.Organization", related_name="sign_in_links", on_delete=fields.CASCADE
    )
    operator: fields.ForeignKeyNullableRelation[Operator] = fields.ForeignKeyField(
        "liftoff.Operator", related_name="sign_in_links", on_delete=fields.CASCADE, null=True
    )
    customer: fields.ForeignKeyNullableRelation[Customer] = fields.ForeignKeyField(
        "liftoff.Customer", related_name="sign_in_links", on_delete=fields.CASCADE, null=True
    )
    secret_hash = fields.CharField(max_length=64, unique=True)
    created_by = fields.CharField(max_length=254)
    created_at = fields.DatetimeField(auto_now_add=True)
    expires_at = fields.DatetimeField()
    used_at = fields.DatetimeField(null=True)
    used_from = fields.CharField(max_length=64, null=True)

    class Meta:
        table = "sign_in_link"
        indexes = (
            ("customer_id",),
            ("operator_id",),
        )


class SignInThrottle(Model):
    """Recent failed sign-ins of one account (`account:<email>`) or address (`address:<ip>`).

    Not tenant data: an email may belong to operators of several organizations, and an
    address to anyone, so the key is global."""

    key = fields.CharField(max_length=320, primary_key=True)
    failures = fields.IntField(default=0)
    last_failure_at = fields.DatetimeField(null=True)
    locked_until = fields.DatetimeField(null=True)

    class Meta:
        table = "sign_in_throttle"
