"""The vocabularies of the engine."""

from __future__ import annotations

from enum import StrEnum


class TaskStatus(StrEnum):
    LOCKED = "LOCKED"
    AVAILABLE = "AVAILABLE"
    IN_PROGRESS = "IN_PROGRESS"
    COMPLETED = "COMPLETED"
    SKIPPED = "SKIPPED"
    FAILED = "FAILED"


class TaskAction(StrEnum):
    START = "START"
    PROGRESS = "PROGRESS"
    COMPLETE = "COMPLETE"
    SKIP = "SKIP"
    FAIL = "FAIL"
    RETRY = "RETRY"


class StageStatus(StrEnum):
    LOCKED = "LOCKED"
    UNLOCKED = "UNLOCKED"
    IN_PROGRESS = "IN_PROGRESS"
    COMPLETED = "COMPLETED"


class StageAction(StrEnum):
    UNLOCK = "UNLOCK"
    COMPLETE = "COMPLETE"
    RESET = "RESET"


class WorkflowStatus(StrEnum):
    ACTIVE = "ACTIVE"
    COMPLETED = "COMPLETED"


DONE = frozenset({TaskStatus.COMPLETED, TaskStatus.SKIPPED})
