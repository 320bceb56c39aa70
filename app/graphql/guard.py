"""Validation with a budget: cost, depth and aliases first (linear), then the spec's rules
under a time limit, cached per document text."""

from __future__ import annotations

import gc
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any

from graphql import (
    ArgumentNode,
    ASTValidationRule,
    FragmentDefinitionNode,
    GraphQLError,
    ObjectFieldNode,
    StringValueNode,
    ValidationContext,
    get_operation_ast,
    validate,
)
from graphql.validation.validate import ValidationAbortedError
from strawberry.schema.validation_rules.maybe_null import MaybeNullValidationRule
from strawberry.schema.validation_rules.one_of import OneOfInputValidationRule
from strawberry.types import ExecutionContext

from app.graphql.budget import measure

TOO_COMPLEX = "QUERY_TOO_COMPLEX"
INVALID_QUERY = "GRAPHQL_VALIDATION_FAILED"


@dataclass(frozen=True, slots=True)
class Limits:
    """The budget every operation is held to."""

    max_cost: int
    max_depth: int
    max_aliases: int
    validation_seconds: float
    introspection: str = "on"

    def introspection_for(self, role: str | None) -> bool:
        """Whether a caller of `role` (None: anonymous) may introspect and get suggestions."""
        return self.introspection == "on" or (self.introspection == "admin" and role == "ADMIN")


class _CollectorTime:
    """CPU seconds the garbage collector has spent in this process: a full collection that
    happens to start during validation is the heap's cost, not the document's."""

    def __init__(self) -> None:
        self.total = 0.0
        self._started = 0.0
        gc.callbacks.append(self._observe)

    def _observe(self, phase: str, _info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.thread_time()
        else:
            self.total += time.thread_time() - self._started


_COLLECTOR = _CollectorTime()


def _validation_clock() -> float:
    return time.thread_time() - _COLLECTOR.total


def deadline_rule(seconds: float) -> type[ASTValidationRule]:
    """A rule that aborts validation once it has used `seconds` of CPU time (CPU time, so a
    busy machine does not refuse ordinary documents; less the collector's, so a full
    collection of a large heap does not either)."""

    class Deadline(ASTValidationRule):
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            self.deadline = _validation_clock() + seconds

        def enter(self, *_: Any) -> None:
            if _validation_clock() > self.deadline:
                raise ValidationAbortedError(
                    f"Validating this document took over {seconds:g}s; send a smaller one.",
                    extensions={"code": TOO_COMPLEX},
                )

    return Deadline


class NoNulCharacters(ASTValidationRule):
    """Text literals may not hold NUL (PostgreSQL refuses it in text): named by argument."""

    def __init__(self, context: ValidationContext) -> None:
        super().__init__(context)
        self.names: list[str] = []

    def enter_argument(self, node: ArgumentNode, *_: Any) -> None:
        self.names.append(node.name.value)

    def leave_argument(self, *_: Any) -> None:
        self.names.pop()

    def enter_object_field(self, node: ObjectFieldNode, *_: Any) -> None:
        self.names.append(node.name.value)

    def leave_object_field(self, *_: Any) -> None:
        self.names.pop()

    def enter_string_value(self, node: StringValueNode, *_: Any) -> None:
        if "\x00" in node.value:
            field = self.names[-1] if self.names else "value"
            self.report_error(
                GraphQLError(
                    f"`{field}` contains a NUL character.",
                    node,
                    extensions={"code": "VALIDATION_FAILED", "field": field},
                )
            )


def budget_errors(context: Any, limits: Limits, *, introspection: bool) -> list[GraphQLError]:
    """Why the operation is over budget (or introspects without leave), checked before any
    validation rule runs."""
    document = context.graphql_document
    operation = get_operation_ast(document, context.operation_name)
    if operation is None:
        return []  # no or ambiguous operation: validation and execution report it
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    found = measure(context.schema._schema, operation, fragments, context.variables or {})
    name = operation.name.value if operation.name else "anonymous"
    if found.introspects and not introspection:
        message = "Introspection is disabled on this server (LIFTOFF_INTROSPECTION)."
        return [_error(message, INVALID_QUERY)]
    if found.depth > limits.max_depth:
        message = f"'{name}' exceeds maximum operation depth of {limits.max_depth}"
        return [_error(message, INVALID_QUERY, depth=found.depth, limit=limits.max_depth)]
    if found.aliases > limits.max_aliases:
        message = f"{found.aliases} aliases found. Allowed: {limits.max_aliases}"
        return [_error(message, INVALID_QUERY, aliases=found.aliases, limit=limits.max_aliases)]
    if found.cost > limits.max_cost:
        cost = min(found.cost, 2**53)
        message = (
            f"This operation could return about {cost} values; the limit is {limits.max_cost}. "
            "Ask for smaller pages (`first`), fewer aliases or fewer nested lists."
        )
        return [_error(message, TOO_COMPLEX, cost=cost, limit=limits.max_cost)]
    return []


def _error(message: str, code: str, **figures: int) -> GraphQLError:
    return GraphQLError(message, extensions={"code": code, **figures})


class _Cache:
    """Errors (none: an empty list) per document and what else they depend on (bounded; a
    timed-out validation is not kept)."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self.entries: OrderedDict[Hashable, list[GraphQLError]] = OrderedDict()

    def get(self, key: Hashable) -> list[GraphQLError] | None:
        found = self.entries.get(key)
        if found is not None:
            self.entries.move_to_end(key)
        return found

    def put(self, key: Hashable, errors: list[GraphQLError]) -> None:
        if any(isinstance(e, ValidationAbortedError) for e in errors):
            return
        self.entries[key] = errors
        if len(self.entries) > self.maxsize:
            self.entries.popitem(last=False)


def verdict_key(
    query: str, operation_name: str | None, variables: Mapping[str, Any] | None, allowed: bool
) -> Hashable:
    """What an operation's budget and validation verdict depend on besides the schema and the
    limits: the document, the operation, whether the caller may introspect, and the integer
    variables (the only ones the budget reads, as page sizes)."""
    ints = tuple(
        sorted(
            (name, value)
            for name, value in (variables or {}).items()
            if isinstance(value, int) and not isinstance(value, bool)
        )
    )
    return (allowed, operation_name, ints, query)


def guard(limits: Limits, *, cache_size: int = 512) -> Callable[[ExecutionContext], None]:
    """What holds an operation to `limits` and validates it, in the validation hook
    (`app.graphql.schema`): its errors (none: an empty list) become the operation's
    `pre_execution_errors`. The verdict on a document is kept (`verdict_key`), so a repeated
    operation is neither measured nor validated again."""
    verdicts = _Cache(cache_size)
    validations = _Cache(cache_size)
    deadline = deadline_rule(limits.validation_seconds)
    extra = (MaybeNullValidationRule, OneOfInputValidationRule, NoNulCharacters, deadline)

    def hold(context: ExecutionContext) -> None:
        if context.pre_execution_errors:  # refused before validation (rate limits)
            return
        document = context.graphql_document
        assert document is not None
        role = getattr(context.context, "role", None)
        allowed = limits.introspection_for(role.value if role else None)
        query = context.query
        key = None
        if query is not None:
            key = verdict_key(query, context.operation_name, context.variables, allowed)
            known = verdicts.get(key)
            if known is not None:
                context.pre_execution_errors = known
                return
        errors = budget_errors(context, limits, introspection=allowed)
        if not errors:
            # validation does not depend on the operation or the variables: one per text
            text = None if query is None else (allowed, query)
            cached = validations.get(text) if text is not None else None
            if cached is None:
                cached = validate(
                    context.schema._schema,
                    document,
                    (*context.validation_rules, *extra),
                    hide_suggestions=not allowed,
                )
                if text is not None:
                    validations.put(text, cached)
            errors = cached
        if key is not None:
            verdicts.put(key, errors)
        context.pre_execution_errors = errors

    return hold
