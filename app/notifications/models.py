"""In-app notifications and the follow-up tasks of the customer-success team."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from tortoise import fields
from tortoise.models import Model


class Notification(Model):
    """A message in someone's inbox: a customer's, or one operator's (by email)."""

    id = fields.UUIDField(primary_key=True)
    organization: fields.ForeignKeyRelation[Any] = fields.ForeignKeyField(
        "liftoff.Organization", related_name="notifications", on_delete=fields.CASCADE
    )
    customer_id = fields.UUIDField(null=True)
    operator = fields.CharField(max_length=254, null=True)
    about_customer_id = fields.UUIDField(null=True)
    title = fields.CharField(max_length=300)
    body = fields.TextField(default="")
    source = fields.CharField(max_length=200, null=True)
    read_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "notification"
        indexes = (
            ("organization_id", "customer_id", "created_at"),
            ("organization_id", "operator"),
        )


class CsmTaskStatus(StrEnum):
    OPEN = "OPEN"
    DONE = "DONE"


class CsmTask(Model):
    """A follow-up for the customer-success team (e.g. "call them"), with a due date."""

    id = fields.UUIDField(primary_key=True)
    organization: fields.ForeignKeyRelation[Any] = fields.ForeignKeyField(
        "liftoff.Organization", related_name="csm_tasks", on_delete=fields.CASCADE
    )
    customer_id = fields.UUIDField()
    title = fields.CharField(max_length=200)
    description = fields.TextField(default="")
    assignee = fields.CharField(max_length=254, null=True)
    status = fields.CharEnumField(CsmTaskStatus, max_length=16, default=CsmTaskStatus.OPEN)
    due_at = fields.DatetimeField(null=True)
    source = fields.CharField(max_length=200, null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    completed_at = fields.DatetimeField(null=True)
    completed_by = fields.CharField(max_length=254, null=True)

    class Meta:
        table = "csm_task"
        indexes = (("organization_id", "status", "created_at"),)
