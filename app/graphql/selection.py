"""What a field's selection asks for below it, so a resolver can read ahead in one statement."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from strawberry.types.nodes import FragmentSpread, InlineFragment, SelectedField, Selection


def _fields(selections: Iterable[Selection], name: str) -> Iterable[SelectedField]:
    """The fields called `name` among `selections`, through fragments."""
    for selection in selections:
        if isinstance(selection, SelectedField):
            if selection.name == name:
                yield selection
        elif isinstance(selection, FragmentSpread | InlineFragment):
            yield from _fields(selection.selections, name)


def selects(info: Any, *path: str) -> bool:
    """Whether the resolved field's selection reaches the GraphQL field names of `path`
    (e.g. "edges", "node", "workflow"), through fragments and aliases. Directives are not
    evaluated: a field under `@skip(if: true)` counts as asked for."""
    level: list[Selection] = [s for f in info.selected_fields for s in f.selections]
    for name in path:
        found = list(_fields(level, name))
        if not found:
            return False
        level = [s for f in found for s in f.selections]
    return True
