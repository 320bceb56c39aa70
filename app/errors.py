"""Expected failures, each with a stable code the API returns in `extensions.code`."""

from __future__ import annotations

from typing import Any, ClassVar


class DomainError(Exception):
    """An expected failure a caller can act on."""

    code: ClassVar[str] = "DOMAIN_ERROR"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class NotFound(DomainError):
    code = "NOT_FOUND"


class Unauthenticated(DomainError):
    code = "UNAUTHENTICATED"


class Forbidden(DomainError):
    code = "FORBIDDEN"


class ValidationFailed(DomainError):
    code = "VALIDATION_FAILED"


class Conflict(DomainError):
    code = "CONFLICT"


class TaskLocked(DomainError):
    code = "TASK_LOCKED"


class DependencyNotMet(DomainError):
    code = "DEPENDENCY_NOT_MET"


class InvalidTransition(DomainError):
    code = "INVALID_TRANSITION"


class TaskRequired(DomainError):
    code = "TASK_REQUIRED"


class WorkflowPaused(DomainError):
    code = "WORKFLOW_PAUSED"


class InvalidTemplate(DomainError):
    code = "INVALID_TEMPLATE"


class SequenceAhead(DomainError):
    """`afterSequence` names an event the customer does not have yet; `latest` says the last."""

    code = "SEQUENCE_AHEAD"


class InvalidHealthModel(DomainError):
    code = "INVALID_HEALTH_MODEL"


class RateLimited(DomainError):
    code = "RATE_LIMITED"


class Unavailable(DomainError):
    code = "SERVICE_UNAVAILABLE"


class InvalidMilestones(DomainError):
    code = "INVALID_MILESTONES"
