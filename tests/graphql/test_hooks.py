"""Extension hooks wrapped once per class run as Strawberry's own runner runs them: the same
hooks, in the same order, around the same stages, with the same errors."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import strawberry
from strawberry.extensions import SchemaExtension
from strawberry.extensions.runner import SchemaExtensionsRunner
from strawberry.types import ExecutionContext

from app.graphql.hooks import WrappedOnce

CALLS: list[str] = []


class Generators(SchemaExtension):
    def on_operation(self) -> Iterator[None]:
        CALLS.append("operation:in")
        yield
        CALLS.append("operation:out")

    async def on_validate(self) -> AsyncIterator[None]:
        CALLS.append("validate:in")
        yield
        CALLS.append("validate:out")


class Plain(SchemaExtension):
    def on_parse(self) -> None:  # type: ignore[override]
        CALLS.append("parse:plain")

    async def on_execute(self) -> None:  # type: ignore[override]
        CALLS.append("execute:plain")


class OperationOnly(SchemaExtension):
    def on_operation(self) -> Iterator[None]:
        CALLS.append("second:in")
        yield
        CALLS.append("second:out")


class Failing(SchemaExtension):
    def on_execute(self) -> Iterator[None]:
        CALLS.append("failing:in")
        yield
        raise RuntimeError("refused on the way out")


@strawberry.type
class Query:
    @strawberry.field
    def hello(self) -> str:
        CALLS.append("resolve")
        return "hi"


def _schema(runner: type[SchemaExtensionsRunner], extensions: list[Any]) -> strawberry.Schema:
    class Schema(strawberry.Schema):
        def create_extensions_runner(
            self, execution_context: ExecutionContext, extensions: list[SchemaExtension]
        ) -> SchemaExtensionsRunner:
            return runner(execution_context, extensions)

    return Schema(query=Query, extensions=extensions)


def _run(runner: type[SchemaExtensionsRunner], extensions: list[Any]) -> tuple[Any, list[str]]:
    CALLS.clear()
    result = asyncio.run(_schema(runner, extensions).execute("{ hello }"))
    errors = [e.message for e in result.errors or []]
    return (result.data, errors), list(CALLS)


@pytest.mark.parametrize(
    "extensions",
    [
        [Generators, OperationOnly],
        [OperationOnly, Generators, Plain],
        [OperationOnly],
        [Failing, Generators],
        [],
    ],
)
def test_hooks_run_as_strawberrys_runner_runs_them(extensions: list[Any]) -> None:
    expected = _run(SchemaExtensionsRunner, extensions)
    assert _run(WrappedOnce, extensions) == expected
    assert _run(WrappedOnce, extensions) == expected  # and again, with the kept plans


def test_a_stage_without_hooks_enters_nothing() -> None:
    runner = WrappedOnce(None, [OperationOnly()])  # type: ignore[arg-type]
    assert runner.executing() is runner.parsing() is runner.validation()
    assert runner.operation() is not runner.executing()
