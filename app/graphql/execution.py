"""A shorter way through graphql-core's executor for plain leaf fields and empty lists.

A 100-customer page has some 900 fields; about 700 of them are attributes of the object
resolved above them with a scalar or enum type (`id`, `name`, `status`, `points`, …).
graphql-core runs each through the general field path: a resolve-info object, strawberry's
resolver wrapper, the completion chain, about 7 µs apiece. For such a field (a strawberry field
without resolver, extensions or arguments, no middleware in the request) the value is read
and coerced here directly; whatever is not plain and successful (null on a non-null field, a
value that does not coerce, an error) is run again through graphql-core's own path, so errors,
their paths and messages stay exactly its own.

A plain field of a list type (no directive on it either, so no `@stream`) whose attribute is
an empty list answers `[]` the same way: most lists of an `updateTask` payload (what it
unlocked, completed, awarded, celebrated) are empty. Any other value takes graphql-core's path.
"""

from __future__ import annotations

import functools
from typing import Any

from graphql import (
    DirectiveNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLField,
    GraphQLList,
    GraphQLNonNull,
    Node,
    OperationDefinitionNode,
    is_leaf_type,
)
from graphql.execution.collect_fields import CollectedFields, collect_subfields
from graphql.pyutils import Undefined
from graphql.type.definition import GraphQLResolveInfoHelpers
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.field import StrawberryField

_SPEC = "_liftoff_plain_leaf"
_NODE_SPEC = "_liftoff_leaf_of"
_NOT_PLAIN = (None, None)
_LIST: Any = object()
"""The "leaf type" of a plain field of a list type: only an empty list is answered here."""

_KEPT = "_liftoff_subfields"
"""An operation node's own sub-field collections, kept with it (so for as long as the parse
cache keeps its document): (return type id, field node ids) -> (type, nodes, collected);
None when its selections depend on the variables."""


def _plain_leaf(field: GraphQLField) -> tuple[str | None, Any]:
    """(attribute name, leaf type) of a plain leaf field, (attribute name, `_LIST`) of a plain
    field of a list type; (None, None) for any other field."""
    spec = field.__dict__.get(_SPEC)
    if spec is None:
        spec = _NOT_PLAIN
        definition = (field.extensions or {}).get(GraphQLCoreConverter.DEFINITION_BACKREF)
        leaf = field.type.of_type if isinstance(field.type, GraphQLNonNull) else field.type
        if (
            isinstance(definition, StrawberryField)
            and definition.is_basic_field
            and definition.default_resolver is getattr
            and not field.args
            and getattr(field.resolve, "_is_default", False)
        ):
            if is_leaf_type(leaf):
                spec = (definition.python_name, leaf)
            elif isinstance(leaf, GraphQLList):
                spec = (definition.python_name, _LIST)
        field.__dict__[_SPEC] = spec
    return spec


class PlainLeaves(StrawberryGraphQLCoreExecutionContext):
    """Strawberry's execution context with the plain-leaf shortcut."""

    @property
    def async_helpers(self) -> GraphQLResolveInfoHelpers:
        """graphql-core keeps these helpers (two methods of the executor) on the executor,
        which makes every executor a reference cycle: the executor, the request's context
        and everything it holds then wait for the cycle collector instead of being freed
        when the request ends. Built when a resolver's info asks for them instead."""
        return GraphQLResolveInfoHelpers(gather=self.gather_async_work, track=self.track_async_work)

    @async_helpers.setter
    def async_helpers(self, _: GraphQLResolveInfoHelpers) -> None:
        pass

    def execute_field(
        self,
        parent_type: Any,
        source: Any,
        field_details_list: Any,
        path: Any,
        position_context: Any,
    ) -> Any:
        node = field_details_list[0].node
        spec = node.__dict__.get(_NODE_SPEC)
        if spec is None or spec[0] is not parent_type:
            spec = self._node_spec(parent_type, node)
        name = spec[1]
        if name is not None and not self._middleware:
            try:
                value = getattr(source, name)
                if spec[2] is _LIST:
                    if type(value) is list and not value:
                        return []
                elif value is not None and not isinstance(value, Exception):
                    coerced = spec[2].coerce_output_value(value)
                    if coerced is not None and coerced is not Undefined:
                        return coerced
                elif value is None and spec[3]:
                    return None
            except Exception:  # graphql-core's own path below reports it
                pass
        return super().execute_field(
            parent_type, source, field_details_list, path, position_context
        )

    def collect_subfields(self, return_type: Any, field_details_list: Any) -> CollectedFields:
        """graphql-core's collection of an object's sub-fields, which it keeps for one
        request; here also kept with the operation node, for every request of the same
        parsed document (the parse cache hands out the same nodes), when its selections
        cannot depend on the variables (no directive, no fragment arguments)."""
        own = self._relevant_sub_fields.get((return_type, id(field_details_list)))
        if own is not None:
            return own[1]  # type: ignore[no-any-return]
        kept = _kept_collections(self.operation, self.fragments)
        if kept is None or any(
            d.defer_usage is not None or d.fragment_variable_values for d in field_details_list
        ):
            return super().collect_subfields(return_type, field_details_list)
        nodes = tuple(d.node for d in field_details_list)
        key = (id(return_type), tuple(map(id, nodes)))
        found = kept.get(key)
        if found is not None and found[0] is return_type and found[1] == nodes:
            collected: CollectedFields = found[2]
        else:
            collected = collect_subfields(
                self.schema,
                self.fragments,
                self.variable_values,
                self.operation,
                return_type,
                field_details_list,
                self.hide_suggestions,
            )
            kept[key] = (return_type, nodes, collected)
        self._relevant_sub_fields[(return_type, id(field_details_list))] = (
            field_details_list,
            collected,
        )
        return collected

    @functools.cached_property
    def _middleware(self) -> bool:
        """Whether field middleware runs in this execution (then every field takes
        graphql-core's path)."""
        manager = self.middleware_manager
        return manager is not None and manager.get_field_resolver(getattr) is not getattr

    def _node_spec(self, parent_type: Any, node: Any) -> tuple[Any, str | None, Any, bool]:
        """(parent type, attribute name, leaf type or `_LIST`, nullable) of a field node of a
        plain leaf or list field under `parent_type` (name None for any other), kept on the
        node: the parse cache hands every request of the same document the same nodes."""
        spec: tuple[Any, str | None, Any, bool] = (parent_type, None, None, False)
        if not node.arguments:
            field = self.schema.get_field(parent_type, node.name.value)
            if field is not None:
                name, leaf = _plain_leaf(field)
                if name is not None and not (leaf is _LIST and node.directives):
                    spec = (parent_type, name, leaf, not isinstance(field.type, GraphQLNonNull))
        node.__dict__[_NODE_SPEC] = spec
        return spec


def _kept_collections(operation: OperationDefinitionNode, fragments: Any) -> dict[Any, Any] | None:
    """The operation node's kept collections; None when its selections (or its fragments')
    may differ with the variables: a directive anywhere (`@skip`, `@include`, `@defer`,
    `@stream`) or fragment arguments. Worked out once per operation node."""
    kept = operation.__dict__.get(_KEPT, False)
    if kept is False:
        definitions: list[Node] = [operation]
        definitions += [getattr(f, "definition", f) for f in (fragments or {}).values()]
        kept = {} if all(_no_directives(d) for d in definitions) else None
        operation.__dict__[_KEPT] = kept
    return kept  # type: ignore[no-any-return]


def _no_directives(root: Node) -> bool:
    stack: list[Any] = [root]
    while stack:
        node = stack.pop()
        if isinstance(node, DirectiveNode):
            return False
        if isinstance(node, FragmentSpreadNode) and getattr(node, "arguments", None):
            return False
        if isinstance(node, FragmentDefinitionNode) and node.variable_definitions:
            return False
        for key in node.keys:
            value = getattr(node, key, None)
            if isinstance(value, Node):
                stack.append(value)
            elif isinstance(value, tuple | list):
                stack.extend(v for v in value if isinstance(v, Node))
    return True
