"""Strawberry's argument conversion, with each field's plan worked out once.

For every call of a field with arguments, Strawberry converts the arguments graphql-core
coerced into Python values (`strawberry.types.arguments.convert_arguments`): for each
argument and each field of each input type it works out again the GraphQL name (camel
case), resolves the annotation and checks what kind of type it is, some 30 µs for an input
of six fields. None of that changes once the schema is built. Here it is worked out once per
field and kept as a plan of small functions; converting then only walks the value. Types
the plan does not cover (`Maybe`, `GlobalID`, lazy types, inputs that build their own value
with `from_input`) go through Strawberry's own `convert_argument`, so the result is the same
value, and the same error, either way.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from strawberry.schema import schema_converter
from strawberry.types import arguments as strawberry_arguments
from strawberry.types.base import (
    StrawberryList,
    StrawberryMaybe,
    StrawberryOptional,
    has_object_definition,
)
from strawberry.types.enum import StrawberryEnumDefinition, has_enum_definition
from strawberry.types.unset import UNSET

Convert = Callable[[object, Any, tuple[str | int, ...]], object]
"""(value, info, path) -> the Python value."""

_ORIGINAL = strawberry_arguments.convert_arguments
_convert_argument = strawberry_arguments.convert_argument

_PLANS: dict[tuple[int, int, int], tuple[object, object, object, tuple[Any, ...]]] = {}
_MAX_PLANS = 4096  # one per field with arguments; schemas built over and over (tests) add more


def convert_arguments(
    value: dict[str, Any],
    arguments: list[Any],
    scalar_registry: Mapping[object, Any],
    config: Any,
    info: Any = None,
) -> dict[str, Any]:
    """`strawberry.types.arguments.convert_arguments`, with the plan of `arguments` kept."""
    if not arguments:
        return {}
    key = (id(arguments), id(scalar_registry), id(config))
    found = _PLANS.get(key)
    if (
        found is None
        or found[0] is not arguments
        or found[1] is not scalar_registry
        or found[2] is not config
    ):
        plan = tuple(
            (
                config.name_converter.from_argument(argument),
                argument.python_name,
                _plan(argument.type, scalar_registry, config),
            )
            for argument in arguments
        )
        if len(_PLANS) >= _MAX_PLANS:
            _PLANS.clear()
        found = _PLANS[key] = (arguments, scalar_registry, config, plan)
    kwargs = {}
    for name, python_name, convert in found[3]:
        if name in value:
            kwargs[python_name] = convert(value[name], info, (name,))
    return kwargs


def _plan(
    type_: Any,
    scalar_registry: Mapping[object, Any],
    config: Any,
    within: frozenset[int] = frozenset(),
) -> Convert:
    """The conversion of a value of `type_`, as `convert_argument` would do it; `within` are
    the input types being planned around it (an input that holds itself is converted the
    generic way from there on)."""

    def generic(value: object, info: Any, path: tuple[str | int, ...]) -> object:
        return _convert_argument(value, type_, scalar_registry, config, info, path=path)

    if isinstance(type_, StrawberryMaybe):
        return generic
    if isinstance(type_, StrawberryOptional):
        return _plan(type_.of_type, scalar_registry, config, within)
    if isinstance(type_, StrawberryList):
        of = type_.of_type
        inner = of.of_type if isinstance(of, StrawberryOptional) else of
        if not isinstance(inner, StrawberryMaybe) and _is_plain_leaf(inner, scalar_registry):
            # the items need no converting; the list is still copied (graphql-core hands
            # the same default to every request that omits the value)
            return _present(list)
        item = _plan(of, scalar_registry, config, within)

        def items(value: Any, info: Any, path: tuple[str | int, ...]) -> object:
            return [item(x, info, (*path, n)) for n, x in enumerate(value)]

        return _present_with(items)
    if _is_plain_leaf(type_, scalar_registry):
        return _present(_same)
    if has_enum_definition(type_):
        return _present(_same)  # an enum definition is a leaf: the value is kept
    if has_object_definition(type_):
        definition = type_.__strawberry_definition__
        if definition.from_input is not None or id(type_) in within:
            return generic
        try:
            planned = _object(type_, definition, scalar_registry, config, within | {id(type_)})
            return _present_with(planned)
        except Exception:  # a field that cannot be planned: Strawberry's way reports it
            return generic
    return generic  # lazy types, GlobalID, anything else: Strawberry's own way


def _object(
    type_: Any,
    definition: Any,
    scalar_registry: Mapping[object, Any],
    config: Any,
    within: frozenset[int],
) -> Convert:
    """The conversion of an input (or object) type's value into an instance of it."""
    implicit = (
        {
            field.python_name: None
            for field in definition.fields
            if field.default_value is dataclasses.MISSING
            and field.default_factory is dataclasses.MISSING
        }
        if definition.is_input
        else {}
    )
    fields = tuple(
        (
            config.name_converter.from_field(field),
            field.python_name,
            _plan(field.resolve_type(type_definition=definition), scalar_registry, config, within),
        )
        for field in definition.fields
    )

    def build(value: Any, info: Any, path: tuple[str | int, ...]) -> object:
        kwargs = dict(implicit)
        for name, python_name, convert in fields:
            if name in value:
                kwargs[python_name] = convert(value[name], info, (*path, name))
        return type_(**kwargs)

    return build


def _is_plain_leaf(type_: Any, scalar_registry: Mapping[object, Any]) -> bool:
    """A scalar or enum whose value is kept as it is (not a GlobalID, not a lazy type)."""
    from strawberry.relay.types import GlobalID
    from strawberry.scalars import is_scalar

    if type_ is GlobalID:
        return False
    return is_scalar(type_, scalar_registry) or isinstance(type_, StrawberryEnumDefinition)


def _same(value: object) -> object:
    return value


def _present(convert: Callable[[Any], object]) -> Convert:
    """`convert` of the value, except that null and unset stay what they are."""

    def run(value: object, _info: Any, _path: tuple[str | int, ...]) -> object:
        if value is None or value is UNSET:
            return value
        return convert(value)

    return run


def _present_with(convert: Convert) -> Convert:
    def run(value: object, info: Any, path: tuple[str | int, ...]) -> object:
        if value is None or value is UNSET:
            return value
        return convert(value, info, path)

    return run


def install() -> None:
    """Make the schema converter's resolvers convert arguments with kept plans (its
    `get_arguments` calls the module's `convert_arguments`)."""
    if getattr(schema_converter, "convert_arguments", None) is _ORIGINAL:
        setattr(schema_converter, "convert_arguments", convert_arguments)  # noqa: B010
