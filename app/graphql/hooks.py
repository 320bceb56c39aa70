"""Strawberry's extension hooks, wrapped once per extension class instead of per request.

For every operation Strawberry wraps each extension's `on_operation`, `on_parse`,
`on_validate` and `on_execute` into a new context-manager function (`contextlib.contextmanager`
over a bound method, with `functools.update_wrapper`), four times per extension and request.
The runner here makes that wrapper once per extension class and hook, and calls it with the
extension: the same generator runs, in the same order, with the same exceptions.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable
from functools import partial
from typing import Any

from strawberry.extensions import SchemaExtension
from strawberry.extensions.context import (
    ExecutingContextManager,
    OperationContextManager,
    ParsingContextManager,
    ValidationContextManager,
    WrappedHook,
)
from strawberry.extensions.runner import SchemaExtensionsRunner

_WRAPPED: dict[tuple[type, str], tuple[Callable[..., Any], bool] | str] = {}


def _wrapped(kind: type[SchemaExtension], hook: str) -> tuple[Callable[..., Any], bool] | str:
    """The context-manager factory of `kind`'s `hook` (taking the extension) and whether it
    is async; "none" when `kind` does not define the hook, "other" for a plain function
    (left to Strawberry). Kept per class and hook."""
    found = _WRAPPED.get((kind, hook))
    if found is not None:
        return found
    fn = getattr(kind, hook)
    if fn is getattr(SchemaExtension, hook):
        found = "none"
    elif inspect.isgeneratorfunction(fn):
        found = contextlib.contextmanager(fn), False
    elif inspect.isasyncgenfunction(fn):
        found = contextlib.asynccontextmanager(fn), True
    else:
        found = "other"
    if len(_WRAPPED) > 4096:  # schemas built over and over (tests) make classes each time
        _WRAPPED.clear()
    _WRAPPED[(kind, hook)] = found
    return found


class _Once:
    HOOK_NAME: str

    def get_hook(self, extension: SchemaExtension) -> WrappedHook | None:
        found = _wrapped(type(extension), self.HOOK_NAME)
        if found == "none":
            return None
        if isinstance(found, str):
            plain: WrappedHook | None = super().get_hook(extension)  # type: ignore[misc]
            return plain
        make, is_async = found
        return WrappedHook(extension=extension, hook=partial(make, extension), is_async=is_async)


class _Operation(_Once, OperationContextManager):
    pass


class _Validation(_Once, ValidationContextManager):
    pass


class _Parsing(_Once, ParsingContextManager):
    pass


class _Executing(_Once, ExecutingContextManager):
    pass


class WrappedOnce(SchemaExtensionsRunner):
    """Strawberry's extensions runner with hooks wrapped once per extension class."""

    def operation(self) -> OperationContextManager:
        return _Operation(self.extensions)

    def validation(self) -> ValidationContextManager:
        return _Validation(self.extensions)

    def parsing(self) -> ParsingContextManager:
        return _Parsing(self.extensions)

    def executing(self) -> ExecutingContextManager:
        return _Executing(self.extensions)
