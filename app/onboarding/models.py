"""Persistence of templates and of each customer's running workflow."""

from __future__ import annotations

from typing import Any

from tortoise import fields
from tortoise.models import Model

from app.onboarding.states import StageStatus, TaskStatus, WorkflowStatus


class WorkflowTemplate(Model):
    """One version of a template; a new version never alters running workflows."""

    id = fields.UUIDField(primary_key=True)
    organization: fields.ForeignKeyRelation[Any] = fields.ForeignKeyField(
        "liftoff.Organization", related_name="templates", on_delete=fields.CASCADE
    )
    key = fields.CharField(max_length=80)
    version = fields.IntField()
    name = fields.CharField(max_length=200)
    description = fields.TextField(default="")
    definition: fields.Field[dict[str, Any]] = fields.JSONField()
    is_default = fields.BooleanField(default=False)
    created_by = fields.CharField(max_length=200, null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "workflow_template"
        unique_together = (("organization_id", "key", "version"),)


class Workflow(Model):
    """A customer's onboarding journey, copied from one template version."""

    id = fields.UUIDField(primary_key=True)
    organization: fields.ForeignKeyRelation[Any] = fields.ForeignKeyField(
        "liftoff.Organization", related_name="workflows", on_delete=fields.CASCADE
    )
    customer: fields.ForeignKeyRelation[Any] = fields.ForeignKeyField(
        "liftoff.Customer", related_name="workflows", on_delete=fields.CASCADE
    )
    template: fields.ForeignKeyRelation[WorkflowTemplate] = fields.ForeignKeyField(
        "liftoff.WorkflowTemplate", related_name="workflows", on_delete=fields.RESTRICT
    )
    status = fields.CharEnumField(WorkflowStatus, max_length=16, default=WorkflowStatus.ACTIVE)
    points = fields.IntField(default=0)
    badges: fields.Field[list[dict[str, Any]]] = fields.JSONField(default=list)
    paused = fields.BooleanField(default=False)
    reminders_enabled = fields.BooleanField(default=True)
    started_at = fields.DatetimeField()
    completed_at = fields.DatetimeField(null=True)
    last_activity_at = fields.DatetimeField()
    version = fields.IntField(default=0)
    progress = fields.FloatField(
        default=0, db_default=0, description="Percent of required tasks done, 0-100."
    )
    minutes_remaining = fields.IntField(default=0, db_default=0)
    current_stage_key = fields.CharField(max_length=80, null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "workflow"
        unique_together = (("organization_id", "customer_id"),)
        indexes = (
            ("customer_id",),
            ("template_id",),
            ("organization_id", "status"),
        )


class WorkflowStage(Model):
    """A stage of one running workflow."""

    id = fields.UUIDField(primary_key=True)
    organization: fields.ForeignKeyRelation[Any] = fields.ForeignKeyField(
        "liftoff.Organization", related_name="stages", on_delete=fields.CASCADE
    )
    workflow: fields.ForeignKeyRelation[Workflow] = fields.ForeignKeyField(
        "liftoff.Workflow", related_name="stages", on_delete=fields.CASCADE
    )
    key = fields.CharField(max_length=80)
    name = fields.CharField(max_length=200)
    description = fields.TextField(default="")
    position = fields.IntField()
    status = fields.CharEnumField(StageStatus, max_length=16)
    unlock: fields.Field[dict[str, Any]] = fields.JSONField(default=dict)
    reward_points = fields.IntField(default=0)
    reward_badge: fields.Field[dict[str, Any] | None] = fields.JSONField(null=True)
    unlocked_at = fields.DatetimeField(null=True)
    completed_at = fields.DatetimeField(null=True)

    class Meta:
        table = "workflow_stage"
        unique_together = (("organization_id", "workflow_id", "key"),)
        indexes = (("workflow_id",),)


class WorkflowTask(Model):
    """A task of one running workflow."""

    id = fields.UUIDField(primary_key=True)
    organization: fields.ForeignKeyRelation[Any] = fields.ForeignKeyField(
        "liftoff.Organization", related_name="tasks", on_delete=fields.CASCADE
    )
    workflow: fields.ForeignKeyRelation[Workflow] = fields.ForeignKeyField(
        "liftoff.Workflow", related_name="tasks", on_delete=fields.CASCADE
    )
    stage: fields.ForeignKeyRelation[WorkflowStage] = fields.ForeignKeyField(
        "liftoff.WorkflowStage", related_name="tasks", on_delete=fields.CASCADE
    )
    key = fields.CharField(max_length=80)
    title = fields.CharField(max_length=200)
    description = fields.TextField(default="")
    position = fields.IntField()
    points = fields.IntField(default=0)
    estimated_minutes = fields.IntField(default=0)
    required = fields.BooleanField(default=True)
    depends_on: fields.Field[list[str]] = fields.JSONField(default=list)
    help_resources: fields.Field[list[dict[str, Any]]] = fields.JSONField(default=list)
    success_criterion: fields.Field[dict[str, Any] | None] = fields.JSONField(null=True)
    status = fields.CharEnumField(TaskStatus, max_length=16)
    progress = fields.IntField(default=0)
    failure_reason = fields.TextField(null=True)
    attempts = fields.IntField(default=0)
    started_at = fields.DatetimeField(null=True)
    completed_at = fields.DatetimeField(null=True)
    updated_at = fields.DatetimeField()

    class Meta:
        table = "workflow_task"
        unique_together = (("organization_id", "workflow_id", "key"),)
        indexes = (
            ("workflow_id",),
            ("stage_id",),
            ("organization_id", "status"),
        )


class StageOverride(Model):
    """Audit record of an admin override on a stage: who, when, what and why."""

    id = fields.UUIDField(primary_key=True)
    organization: fields.ForeignKeyRelation[Any] = fields.ForeignKeyField(
        "liftoff.Organization", related_name="stage_overrides", on_delete=fields.CASCADE
    )
    workflow: fields.ForeignKeyRelation[Workflow] = fields.ForeignKeyField(
        "liftoff.Workflow", related_name="overrides", on_delete=fields.CASCADE
    )
    stage: fields.ForeignKeyRelation[WorkflowStage] = fields.ForeignKeyField(
        "liftoff.WorkflowStage", related_name="overrides", on_delete=fields.CASCADE
    )
    action = fields.CharField(max_length=16)
    reason = fields.TextField()
    actor = fields.CharField(max_length=200)
    actor_role = fields.CharField(max_length=16)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "stage_override"
        indexes = (
            ("workflow_id",),
            ("stage_id",),
        )
