"""Query budget: estimated result size, depth and aliases in one linear pass over a document.

Each fragment is measured once and its figures are reused at every spread, so nested
spreads (`fragment F1 { ...F0 ...F0 }` … `F24`) cost a walk of the text, not of its
expansion. The cost is an estimate of how many values the result holds: every field
counts one, and the selections under a list are multiplied by its length (`first`,
capped at the page maximum, for connections; `DEFAULT_LIST_SIZE` for other lists).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    VariableNode,
    get_named_type,
)
from graphql.type.definition import GraphQLNamedType, GraphQLOutputType
from graphql.type.introspection import SchemaMetaFieldDef, TypeMetaFieldDef

from app.kit.pagination import MAX_PAGE

DEFAULT_LIST_SIZE = 10
PAGE_ARGUMENTS = ("first", "last")


@dataclass(frozen=True, slots=True)
class Measure:
    """What one selection set would produce: values, nesting depth and aliases."""

    cost: int = 0
    depth: int = 0
    aliases: int = 0
    introspects: bool = False

    def __add__(self, other: Measure) -> Measure:
        return Measure(
            self.cost + other.cost,
            max(self.depth, other.depth),
            self.aliases + other.aliases,
            self.introspects or other.introspects,
        )


class _Walk:
    """One measurement of one document with one set of variables."""

    def __init__(
        self,
        schema: GraphQLSchema,
        fragments: Mapping[str, FragmentDefinitionNode],
        variables: Mapping[str, Any],
    ) -> None:
        self.schema = schema
        self.fragments = fragments
        self.variables = variables
        self.memo: dict[str, Measure] = {}
        self.open: set[str] = set()

    def selections(self, node: SelectionSetNode | None, parent: GraphQLNamedType | None) -> Measure:
        total = Measure()
        if node is None:
            return total
        for selection in node.selections:
            if isinstance(selection, FieldNode):
                total = total + self.field(selection, parent)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                scope = self.schema.get_type(condition.name.value) if condition else parent
                total = total + self.selections(selection.selection_set, scope)
            elif isinstance(selection, FragmentSpreadNode):
                total = total + self.fragment(selection.name.value)
        return total

    def fragment(self, name: str) -> Measure:
        if name in self.memo:
            return self.memo[name]
        definition = self.fragments.get(name)
        if definition is None or name in self.open:  # unknown or cyclic: validation reports it
            return Measure()
        self.open.add(name)
        scope = self.schema.get_type(definition.type_condition.name.value)
        measure = self.selections(definition.selection_set, scope)
        self.open.discard(name)
        self.memo[name] = measure
        return measure

    def field(self, node: FieldNode, parent: GraphQLNamedType | None) -> Measure:
        aliases = 1 if node.alias else 0
        name = node.name.value
        if node.selection_set is None:
            return Measure(cost=1, aliases=aliases)
        output = self._output_type(parent, name)
        inner = self.selections(node.selection_set, get_named_type(output) if output else None)
        if name.startswith("__"):  # introspection counts for cost, not for depth
            return Measure(1 + inner.cost, 0, aliases + inner.aliases, introspects=True)
        times = self._length(node, parent, output)
        return Measure(
            cost=1 + times * inner.cost,
            depth=1 + inner.depth,
            aliases=aliases + inner.aliases,
        )

    def _output_type(self, parent: GraphQLNamedType | None, name: str) -> GraphQLOutputType | None:
        if name == "__schema":
            return SchemaMetaFieldDef.type
        if name == "__type":
            return TypeMetaFieldDef.type
        if isinstance(parent, GraphQLObjectType | GraphQLInterfaceType):
            field = parent.fields.get(name)
            return field.type if field is not None else None
        return None

    def _length(
        self, node: FieldNode, parent: GraphQLNamedType | None, output: GraphQLOutputType | None
    ) -> int:
        """How many items the field's selections are repeated for."""
        for argument in node.arguments or ():
            if argument.name.value in PAGE_ARGUMENTS:
                return self._page(argument.value)
        if output is None:
            return 1
        bare = output.of_type if isinstance(output, GraphQLNonNull) else output
        if not isinstance(bare, GraphQLList):
            return 1
        if parent is not None and parent.name.endswith("Connection"):
            return 1  # edges of a page: the page size was counted on the connection field
        return DEFAULT_LIST_SIZE

    def _page(self, value: Any) -> int:
        if isinstance(value, IntValueNode):
            number: Any = int(value.value)
        elif isinstance(value, VariableNode):
            number = self.variables.get(value.name.value)
        else:
            number = None
        if not isinstance(number, int) or isinstance(number, bool):
            return MAX_PAGE
        return max(0, min(number, MAX_PAGE))


def measure(
    schema: GraphQLSchema,
    operation: OperationDefinitionNode,
    fragments: Mapping[str, FragmentDefinitionNode],
    variables: Mapping[str, Any] | None = None,
) -> Measure:
    """Cost, depth and aliases of one operation; linear in the size of the document."""
    root = schema.get_root_type(operation.operation)
    walk = _Walk(schema, fragments, variables or {})
    return walk.selections(operation.selection_set, root)
