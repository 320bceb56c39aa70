"""Arguments converted with kept plans give what Strawberry's own conversion gives."""

from __future__ import annotations

from enum import Enum
from typing import Any

import pytest
import strawberry
from strawberry.relay import GlobalID
from strawberry.types.arguments import convert_arguments as strawberry_convert
from strawberry.types.unset import UNSET

from app.graphql import arguments
from app.graphql.schema import build_schema
from app.settings import Settings


@strawberry.enum
class Color(Enum):
    RED = "RED"
    BLUE = "BLUE"


@strawberry.input
class Leaf:
    name: str
    tags: list[str] = strawberry.field(default_factory=list)
    color: Color | None = None


@strawberry.input
class Tree:
    label: str | None = None
    leaves: list[Leaf] | None = None
    maybe_leaves: list[Leaf | None] | None = None
    node: GlobalID | None = None
    note: strawberry.Maybe[str | None] = None
    children: list[Tree] | None = None
    count: int = 3


@strawberry.type
class Query:
    @strawberry.field
    def shape(self, tree: Tree, ids: list[strawberry.ID] | None = None, n: int = 1) -> str:
        return ""


SCHEMA = strawberry.Schema(query=Query)
FIELD = SCHEMA.schema_converter.type_map["Query"].definition.get_field("shape")
VALUES: list[dict[str, Any]] = [
    {"tree": {}},
    {"tree": {"label": None, "leaves": None}, "ids": None},
    {"tree": {"label": "x", "count": 7}, "ids": ["1", "2"], "n": 5},
    {
        "tree": {
            "leaves": [{"name": "a", "tags": ["t"], "color": Color.RED}, {"name": "b"}],
            "maybe_leaves": [None, {"name": "c", "color": None}],
            "node": str(GlobalID("Tree", "1")),
            "note": None,
            "children": [{"label": "kid", "children": [{"label": "grandkid"}]}],
        }
    },
    {"tree": {"note": "kept", "label": UNSET}},
]


def _same(value: dict[str, Any]) -> tuple[Any, Any]:
    registry, config = SCHEMA.schema_converter.scalar_registry, SCHEMA.config
    expected = strawberry_convert(value, FIELD.arguments, registry, config)
    got = arguments.convert_arguments(value, FIELD.arguments, registry, config)
    return expected, got


@pytest.mark.parametrize("value", VALUES)
def test_a_planned_conversion_gives_strawberrys_value(value: dict[str, Any]) -> None:
    expected, got = _same(value)
    assert got == expected
    assert repr(got) == repr(expected)


def test_a_list_of_leaves_is_a_copy_of_the_default_it_came_from() -> None:
    default = ["1"]
    _, got = _same({"tree": {}, "ids": default})
    assert got["ids"] == default and got["ids"] is not default


def test_a_bad_global_id_is_refused_as_strawberry_refuses_it() -> None:
    value = {"tree": {"node": "not base64"}}
    registry, config = SCHEMA.schema_converter.scalar_registry, SCHEMA.config
    with pytest.raises(Exception) as expected:
        strawberry_convert(value, FIELD.arguments, registry, config)
    with pytest.raises(type(expected.value)) as got:
        arguments.convert_arguments(value, FIELD.arguments, registry, config)
    assert str(got.value) == str(expected.value)


async def test_the_api_schema_converts_an_update_with_kept_plans() -> None:
    schema = build_schema(Settings())
    mutation = schema.schema_converter.type_map["Mutation"].definition
    field = mutation.get_field("update_task")
    assert field is not None
    task_action = schema.schema_converter.type_map["TaskAction"].implementation
    value = {
        "input": {
            "action": task_action.parse_value("PROGRESS"),
            "taskKey": "verify_email",
            "customerId": "c1",
            "progress": 42,
        }
    }
    registry, config = schema.schema_converter.scalar_registry, schema.config
    expected = strawberry_convert(value, field.arguments, registry, config)
    assert arguments.convert_arguments(value, field.arguments, registry, config) == expected
    assert expected["input"].reason is None and expected["input"].progress == 42
