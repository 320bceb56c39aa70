"""Errors for callers: domain errors keep their message and code; anything else is masked."""

from __future__ import annotations

import logging

import asyncpg
from graphql.error import GraphQLError
from strawberry.extensions import MaskErrors

from app.errors import DomainError, Unavailable, ValidationFailed
from app.kit.connections import connection_lost

log = logging.getLogger("app.graphql")

INTERNAL = "INTERNAL_SERVER_ERROR"
INVALID_QUERY = "GRAPHQL_VALIDATION_FAILED"
LOST_CONNECTION = "The database connection was lost while answering; retry the request."


def is_callers_error(error: GraphQLError) -> bool:
    """A syntax, validation or variable error: the request itself is wrong."""
    return error.original_error is None or isinstance(error.original_error, GraphQLError)


def domain_error_of(error: GraphQLError) -> DomainError | None:
    """The DomainError behind a GraphQL error, if that is what it is.

    A value PostgreSQL refuses as data (too long, NUL, out of range: SQLSTATE class 22)
    that no check caught before counts as VALIDATION_FAILED, not as an internal error.
    """
    original = error.original_error
    if isinstance(original, DomainError):
        return original
    if original is not None and connection_lost(original):
        return Unavailable(LOST_CONNECTION)
    cause: BaseException | None = original
    while cause is not None:
        if isinstance(cause, asyncpg.exceptions.DataError):
            return ValidationFailed(f"A value was refused by the database: {cause}.")
        cause = cause.__cause__
    return None


class ErrorCodes(MaskErrors):
    """Attach `extensions.code` to every error; mask the unexpected ones."""

    def __init__(self) -> None:
        super().__init__(error_message="Unexpected error; it has been logged.")

    def _process_result(self, result: object) -> None:
        if getattr(result, "errors", None):  # most results have none: skip the slow checks
            super()._process_result(result)

    def _process_errors(self, errors: list[GraphQLError]) -> list[GraphQLError]:
        return [self._shape(e) for e in errors]

    def _shape(self, error: GraphQLError) -> GraphQLError:
        domain = domain_error_of(error)
        if domain is not None:
            return GraphQLError(
                domain.message,
                nodes=error.nodes,
                source=error.source,
                positions=error.positions,
                path=error.path,
                extensions={"code": domain.code, **plain(domain.details)},
            )
        if is_callers_error(error):
            code = (error.extensions or {}).get("code", INVALID_QUERY)
            return GraphQLError(
                error.message,
                nodes=error.nodes,
                source=error.source,
                positions=error.positions,
                path=error.path,
                extensions={**(error.extensions or {}), "code": code},
            )
        masked = self.anonymise_error(error)
        masked.extensions = {"code": INTERNAL}
        return masked


def plain(details: dict[str, object]) -> dict[str, object]:
    return {
        k: v if isinstance(v, str | int | float | bool | list | type(None)) else str(v)
        for k, v in details.items()
    }
