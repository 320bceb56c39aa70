"""Automation rules, their versions, each run and each action's execution."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from tortoise import fields
from tortoise.models import Model


class RunStatus(StrEnum):
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    PENDING = "PENDING"  # external sends still being delivered
    WAITING = "WAITING"  # paused at a delay
    SKIPPED = "SKIPPED"  # conditions held, but cooldown / max runs / window said no
    LOOP_LIMIT = "LOOP_LIMIT"


class ActionStatus(StrEnum):
    DONE = "DONE"
    FAILED = "FAILED"
    QUEUED = "QUEUED"  # a delivery row carries it to SMTP / HTTP
    WAITING = "WAITING"  # a delay not yet over


class AutomationRule(Model):
    """An organization's rule; `definition` is the normalized document of its current version."""

    id = fields.UUIDField(primary_key=True)
    organization: fields.ForeignKeyRelation[Any] = fields.ForeignKeyField(
        "liftoff.Organization", related_name="automation_rules", on_delete=fields.CASCADE
    )
    key = fields.CharField(max_length=80, null=True)
    name = fields.CharField(max_length=200)
    enabled = fields.BooleanField(default=False)
    priority = fields.IntField(default=0)
    trigger_key = fields.CharField(max_length=64)
    version = fields.IntField(default=1)
    definition: fields.Field[dict[str, Any]] = fields.JSONField()
    created_by = fields.CharField(max_length=200, null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)
    deleted_at = fields.DatetimeField(null=True)

    class Meta:
        table = "automation_rule"
        unique_together = (("organization_id", "key"),)
        indexes = (("organization_id", "enabled", "trigger_key"),)


class AutomationRuleVersion(Model):
    """Every version a rule had; a run names the version it used."""

    id = fields.UUIDField(primary_key=True)
    organization: fields.ForeignKeyRelation[Any] = fields.ForeignKeyField(
        "liftoff.Organization", related_name="automation_rule_versions", on_delete=fields.CASCADE
    )
    rule: fields.ForeignKeyRelation[AutomationRule] = fields.ForeignKeyField(
        "liftoff.AutomationRule", related_name="versions", on_delete=fields.CASCADE
    )
    version = fields.IntField()
    enabled = fields.BooleanField()
    definition: fields.Field[dict[str, Any]] = fields.JSONField()
    created_by = fields.CharField(max_length=200, null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "automation_rule_version"
        unique_together = (("organization_id", "rule_id", "version"),)
        indexes = (("rule_id",),)


class AutomationRun(Model):
    """One firing of a rule for a customer: why, what held, and what each action did."""

    id = fields.UUIDField(primary_key=True)
    organization: fields.ForeignKeyRelation[Any] = fields.ForeignKeyField(
        "liftoff.Organization", related_name="automation_runs", on_delete=fields.CASCADE
    )
    rule: fields.ForeignKeyRelation[AutomationRule] = fields.ForeignKeyField(
        "liftoff.AutomationRule", related_name="runs", on_delete=fields.CASCADE
    )
    rule_version = fields.IntField()
    customer_id = fields.UUIDField()
    trigger = fields.CharField(max_length=200)
    trigger_type = fields.CharField(max_length=64)
    event_id = fields.BigIntField(null=True)
    depth = fields.IntField(default=0)
    status = fields.CharEnumField(RunStatus, max_length=16)
    reason = fields.TextField(null=True)
    conditions: fields.Field[list[dict[str, Any]]] = fields.JSONField(default=list)
    branches: fields.Field[dict[str, bool]] = fields.JSONField(default=dict)
    resume_at = fields.DatetimeField(null=True)
    resume_after = fields.CharField(max_length=200, null=True)
    goal_deadline = fields.DatetimeField(null=True)
    goal_met_at = fields.DatetimeField(null=True)
    duration_ms = fields.FloatField(default=0)
    created_at = fields.DatetimeField(auto_now_add=True)
    finished_at = fields.DatetimeField(null=True)

    class Meta:
        table = "automation_run"
        unique_together = (("organization_id", "rule_id", "trigger"),)
        indexes = (
            ("rule_id",),
            ("organization_id", "rule_id", "customer_id", "created_at"),
            ("organization_id", "customer_id", "goal_deadline"),
            ("status", "resume_at"),
        )


class ActionExecution(Model):
    """An action done once per (rule, trigger, action path): the key is unique in the database."""

    id = fields.UUIDField(primary_key=True)
    organization: fields.ForeignKeyRelation[Any] = fields.ForeignKeyField(
        "liftoff.Organization", related_name="automation_actions", on_delete=fields.CASCADE
    )
    run: fields.ForeignKeyRelation[AutomationRun] = fields.ForeignKeyField(
        "liftoff.AutomationRun", related_name="actions", on_delete=fields.CASCADE
    )
    rule_id = fields.UUIDField()
    idempotency_key = fields.CharField(max_length=300)
    path = fields.CharField(max_length=200)
    type = fields.CharField(max_length=32)
    status = fields.CharEnumField(ActionStatus, max_length=16)
    attempts = fields.IntField(default=1)
    duration_ms = fields.FloatField(default=0)
    error = fields.TextField(null=True)
    error_kind = fields.CharField(max_length=64, null=True)
    result: fields.Field[dict[str, Any]] = fields.JSONField(default=dict)
    created_at = fields.DatetimeField(auto_now_add=True)
    finished_at = fields.DatetimeField(null=True)

    class Meta:
        table = "automation_action"
        unique_together = (("organization_id", "idempotency_key"),)
        indexes = (
            ("run_id",),
            ("organization_id", "rule_id", "created_at"),
        )


class CustomerActivity(Model):
    """When a customer was last seen using the product (from `usage.*` events)."""

    customer_id = fields.UUIDField(primary_key=True)
    organization: fields.ForeignKeyRelation[Any] = fields.ForeignKeyField(
        "liftoff.Organization", related_name="customer_activity", on_delete=fields.CASCADE
    )
    last_usage_at = fields.DatetimeField()

    class Meta:
        table = "automation_customer_activity"
        indexes = (("organization_id", "last_usage_at"),)
