"""One log line, metrics and a trace span per GraphQL operation; subscriptions counted."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncGenerator, Iterator
from functools import lru_cache
from typing import Any

import structlog
from graphql import OperationDefinitionNode, OperationType, parse
from graphql.error import GraphQLError

from app.graphql.errors import ErrorCodes
from app.ops import metrics, tracing

log = structlog.get_logger("app.graphql.operation")
_LINES = logging.getLogger("app.graphql.operation")
"""The standard logger behind `log`: whether it writes INFO lines at all."""


def _codes(errors: list[GraphQLError] | None) -> list[str]:
    codes = []
    for error in errors or ():
        code = (error.extensions or {}).get("code")
        codes.append(str(code) if code else "INTERNAL_SERVER_ERROR")
    return codes


class Observe(ErrorCodes):
    """`ErrorCodes`, then times the operation and records its outcome, error codes (as callers
    get them) and caller: one operation hook for both."""

    def on_operation(self) -> Iterator[None]:
        started = time.perf_counter()
        context = self.execution_context
        with tracing.span("graphql.operation") as span:
            yield from super().on_operation()  # errors get their codes when it returns
            elapsed = time.perf_counter() - started
            try:
                kind = context.operation_type.value
            except Exception:
                kind = "unknown"
            name = metrics.operation_label(context.operation_name)
            result = context.result
            errors = getattr(result, "errors", None) if result is not None else None
            if errors is None and context.pre_execution_errors:
                errors = context.pre_execution_errors
            codes = _codes(errors)
            outcome = "error" if codes else "ok"
            metrics.child(metrics.OPERATIONS, name, kind, outcome).inc()
            metrics.child(metrics.OPERATION_SECONDS, name, kind).observe(elapsed)
            for code in codes:
                metrics.ERRORS.labels(code).inc()
            traced = span is not tracing.NO_SPAN
            logged = _LINES.isEnabledFor(logging.INFO)
            if not (traced or logged):
                return  # the line would be dropped and the span is a no-op: build neither
            caller = _caller(context.context)
            if traced:
                span.set_attributes(
                    {
                        "graphql.operation.name": name,
                        "graphql.operation.type": kind,
                        "liftoff.outcome": outcome,
                        **caller,
                    }
                )
            if logged:
                log.info(
                    "graphql",
                    operation=name,
                    type=kind,
                    outcome=outcome,
                    codes=codes or None,
                    duration_ms=round(elapsed * 1000, 2),
                    **caller,
                )


def _caller(context: Any) -> dict[str, str]:
    """Organization and role of the authenticated caller, when there is one."""
    viewer = getattr(context, "_viewer", None)
    if viewer is None:
        return {}
    return {"org": str(viewer.organization_id), "role": viewer.role.value}


@lru_cache(maxsize=512)
def root_field(query: str, operation_name: str | None) -> str | None:
    """The first root field of the document's subscription (None for other operations)."""
    try:
        document = parse(query, no_location=True)
    except GraphQLError:
        return None
    for definition in document.definitions:
        if not isinstance(definition, OperationDefinitionNode):
            continue
        if operation_name is not None and (
            definition.name is None or definition.name.value != operation_name
        ):
            continue
        if definition.operation != OperationType.SUBSCRIPTION:
            return None
        for selection in definition.selection_set.selections:
            field = getattr(selection, "name", None)
            if field is not None:
                return str(field.value)[:64]
    return None


async def counted(results: AsyncGenerator[Any, None], field: str) -> AsyncGenerator[Any, None]:
    """`results`, counting the subscription as running while it is iterated."""
    gauge = metrics.SUBSCRIPTIONS.labels(field)
    gauge.inc()
    try:
        async for result in results:
            yield result
    finally:
        gauge.dec()
        await results.aclose()
