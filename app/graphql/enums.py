"""The domain vocabularies, registered once as GraphQL enums."""

from __future__ import annotations

import strawberry

from app.accounts import models as accounts
from app.onboarding import states

Role = strawberry.enum(accounts.Role, description="What a caller may do.")
TaskStatus = strawberry.enum(states.TaskStatus, description="Where a task stands.")
TaskAction = strawberry.enum(states.TaskAction, description="What a caller does to a task.")
StageStatus = strawberry.enum(states.StageStatus, description="Where a stage stands.")
StageAction = strawberry.enum(states.StageAction, description="An admin override on a stage.")
WorkflowStatus = strawberry.enum(states.WorkflowStatus, description="Where a workflow stands.")
