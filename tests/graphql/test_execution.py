"""The plain-leaf shortcut answers exactly as graphql-core's own field path: values, enums,
nulls, aliases, fragments, directives, empty and other lists, and the errors (message, path)
of a null on a non-null field or a value that does not coerce."""

from __future__ import annotations

import asyncio
import enum
from dataclasses import dataclass
from typing import Any

import pytest
import strawberry
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from app.graphql.execution import PlainLeaves


@strawberry.enum
class Color(enum.Enum):
    RED = "RED"
    BLUE = "BLUE"


@dataclass
class Row:
    name: Any
    count: Any
    color: Any
    note: Any = None
    tags: Any = ()


@strawberry.type
class Item:
    name: str
    count: int
    color: Color
    note: str | None
    renamed: int = strawberry.field(name="alias")
    tags: list[str] = strawberry.field(default_factory=list)
    colors: list[Color] | None = None

    @strawberry.field
    def computed(self) -> str:
        return f"{self.name}!"


@strawberry.type
class Query:
    @strawberry.field
    def items(self) -> list[Item | None]:
        rows = [
            Row("a", 1, Color.RED, "n", []),
            Row("b", 2, Color.BLUE, None, ["x", "y"]),
            Row(None, 3, Color.RED, None, None),  # null on a non-null field: an error at its path
            Row("d", "not a number", Color.RED, None, ("t",)),  # does not coerce
            Row("e", 5, "GREEN", None, [1]),  # not an enum value; an int in a list of strings
        ]
        return [
            Item(
                name=r.name,
                count=r.count,
                color=r.color,
                note=r.note,
                renamed=7,
                tags=r.tags,
                colors=[] if r.note else None,
            )
            for r in rows
        ]

    @strawberry.field
    async def later(self) -> list[Item]:
        return [Item(name="z", count=9, color=Color.BLUE, note=None, renamed=8)]


DOCUMENTS = [
    "{ items { name count color note alias computed __typename tags colors } }",
    "{ items { n: name c: count ...F } later { ... on Item { name color } } }"
    " fragment F on Item { color note }",
    "query($s: Boolean!) { items { name @skip(if: $s) count @include(if: $s) } }",
    "{ later { name count color note } }",
    "query($s: Boolean!) { later { tags @include(if: $s) t: tags colors } }",
]


def _run(context: type, document: str) -> dict[str, Any]:
    schema = strawberry.Schema(query=Query, execution_context_class=context)
    result = asyncio.run(schema.execute(document, variable_values={"s": True}))
    errors = sorted((e.message, tuple(e.path or ())) for e in result.errors or [])
    return {"data": result.data, "errors": errors}


@pytest.mark.parametrize("document", DOCUMENTS)
def test_plain_leaves_answer_as_graphql_core(document: str) -> None:
    plain = _run(PlainLeaves, document)
    assert plain == _run(StrawberryGraphQLCoreExecutionContext, document)
    assert plain["data"] is not None or plain["errors"]


def test_only_what_is_not_plain_takes_the_long_path(monkeypatch: pytest.MonkeyPatch) -> None:
    long_path: list[str] = []
    original = StrawberryGraphQLCoreExecutionContext.execute_field

    def counted(self: Any, parent_type: Any, source: Any, details: Any, *rest: Any) -> Any:
        long_path.append(f"{parent_type.name}.{details[0].node.name.value}")
        return original(self, parent_type, source, details, *rest)

    monkeypatch.setattr(StrawberryGraphQLCoreExecutionContext, "execute_field", counted)
    assert _run(PlainLeaves, "{ later { name count color note computed } }")["errors"] == []
    assert long_path == ["Query.later", "Item.computed"]
    long_path.clear()
    assert _run(PlainLeaves, "{ later { tags colors } }")["data"] == {
        "later": [{"tags": [], "colors": None}]
    }
    assert long_path == ["Query.later", "Item.colors"]  # an empty list is plain, a null is not
    long_path.clear()
    _run(PlainLeaves, DOCUMENTS[0])
    # the failing leaves of rows 2-4 go the long way, which reports them (each item nulled)
    assert {"Item.name", "Item.count", "Item.color"} <= set(long_path)
    # a list that is not empty goes the long way too (rows 3-5 fail before their tags)
    assert long_path.count("Item.tags") == 1


def test_a_streamed_list_is_never_answered_here() -> None:
    schema = strawberry.Schema(query=Query, execution_context_class=PlainLeaves)
    node_spec = PlainLeaves._node_spec
    seen: list[Any] = []

    def spied(self: Any, parent_type: Any, node: Any) -> Any:
        spec = node_spec(self, parent_type, node)
        seen.append((node.name.value, spec[1]))
        return spec

    PlainLeaves._node_spec = spied  # type: ignore[method-assign]
    try:
        document = "query($s: Boolean!) { later { tags @include(if: $s) } }   "
        asyncio.run(schema.execute(document, variable_values={"s": True}))
    finally:
        PlainLeaves._node_spec = node_spec  # type: ignore[method-assign]
    assert ("tags", None) in seen


def _cached_schema() -> strawberry.Schema:
    from strawberry.extensions import ParserCache

    return strawberry.Schema(
        query=Query,
        execution_context_class=PlainLeaves,
        extensions=[lambda: ParserCache(maxsize=8)],
    )


def test_sub_fields_are_collected_once_per_parsed_document(monkeypatch: pytest.MonkeyPatch) -> None:
    from app.graphql import execution

    collected: list[str] = []
    original = execution.collect_subfields

    def counted(*args: Any) -> Any:
        collected.append(args[4].name)
        return original(*args)

    monkeypatch.setattr(execution, "collect_subfields", counted)
    schema = _cached_schema()
    document = DOCUMENTS[1] + " "  # its own text: a document of its own in the parse cache
    first = asyncio.run(schema.execute(document))
    assert collected and first.data is not None
    collected.clear()
    again = asyncio.run(schema.execute(document))
    assert collected == [] and again.data == first.data and again.errors == first.errors
    expected = _run(StrawberryGraphQLCoreExecutionContext, document)
    assert again.data == expected["data"]


def test_selections_that_depend_on_the_variables_are_collected_every_time() -> None:
    schema = _cached_schema()
    document = DOCUMENTS[2]
    shown = asyncio.run(schema.execute(document, variable_values={"s": True}))
    hidden = asyncio.run(schema.execute(document, variable_values={"s": False}))
    assert shown.data is not None and hidden.data is not None
    assert set(shown.data["items"][0]) == {"count"}
    assert set(hidden.data["items"][0]) == {"name"}


@strawberry.type
class Shouting:
    @strawberry.field
    def name(self) -> str:
        return "LOUD"


@strawberry.type
class Other:
    @strawberry.field
    def later(self) -> list[Shouting]:
        return [Shouting()]


def test_a_document_shared_by_two_schemas_answers_as_each_schema_says() -> None:
    from strawberry.extensions import ParserCache

    document = "{ later { name } }  "  # its own text; the parse cache is shared by maxsize
    quiet, loud = (
        strawberry.Schema(
            query=q, execution_context_class=PlainLeaves, extensions=[lambda: ParserCache(8)]
        )
        for q in (Query, Other)
    )
    for _ in range(2):
        assert asyncio.run(quiet.execute(document)).data == {"later": [{"name": "z"}]}
        assert asyncio.run(loud.execute(document)).data == {"later": [{"name": "LOUD"}]}
