"""Strawberry's extension hooks, wrapped once per extension class instead of per request.

For every operation Strawberry wraps each extension's `on_operation`, `on_parse`,
`on_validate` and `on_execute` into a new context-manager function (`contextlib.contextmanager`
over a bound method, with `functools.update_wrapper`), four times per extension and request.
The runner here makes that wrapper once per extension class and hook, and calls it with the
extension: the same generator runs, in the same order, with the same exceptions. Which
extensions of a schema have which hook is worked out once per list of extension classes, so
a request only builds the hooks that exist, and a stage no extension hooks into (often
`on_execute`) enters nothing.
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
_PLANS: dict[tuple[str, tuple[type, ...]], list[tuple[int, Callable[..., Any], bool]] | None] = {}


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


def _plan(hook: str, kinds: tuple[type, ...]) -> list[tuple[int, Callable[..., Any], bool]] | None:
    """(position, context-manager factory, is async) of each extension class in `kinds` that
    defines `hook`; None when one defines it as a plain function (left to Strawberry)."""
    key = (hook, kinds)
    if key in _PLANS:
        return _PLANS[key]
    plan: list[tuple[int, Callable[..., Any], bool]] | None = []
    for n, kind in enumerate(kinds):
        found = _wrapped(kind, hook)
        if found == "none":
            continue
        if isinstance(found, str) or plan is None:
            plan = None
            continue
        plan.append((n, *found))
    if len(_PLANS) > 4096:
        _PLANS.clear()
    _PLANS[key] = plan
    return plan


class _Once:
    HOOK_NAME: str

    def __init__(self, extensions: list[SchemaExtension], kinds: tuple[type, ...] = ()) -> None:
        plan = _plan(self.HOOK_NAME, kinds or tuple(map(type, extensions)))
        if plan is None:
            super().__init__(extensions)  # type: ignore[call-arg]
            return
        self.default_hook = getattr(SchemaExtension, self.HOOK_NAME)
        self.hooks = [
            WrappedHook(extension=extensions[n], hook=partial(make, extensions[n]), is_async=a)
            for n, make, a in plan
        ]

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


class _NoHooks:
    """The stage of an operation no extension hooks into: nothing to enter or leave."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, *_: object) -> None:
        return None

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *_: object) -> None:
        return None


_NO_HOOKS: Any = _NoHooks()


class WrappedOnce(SchemaExtensionsRunner):
    """Strawberry's extensions runner with hooks wrapped once per extension class."""

    def __init__(self, execution_context: Any, extensions: list[Any] | None = None) -> None:
        super().__init__(execution_context=execution_context, extensions=extensions)
        self.kinds = tuple(map(type, self.extensions))

    def _stage(self, stage: type[_Once]) -> Any:
        if _plan(stage.HOOK_NAME, self.kinds) == []:
            return _NO_HOOKS
        return stage(self.extensions, self.kinds)  # type: ignore[call-arg]

    def operation(self) -> OperationContextManager:
        return self._stage(_Operation)  # type: ignore[no-any-return]

    def validation(self) -> ValidationContextManager:
        return self._stage(_Validation)  # type: ignore[no-any-return]

    def parsing(self) -> ParsingContextManager:
        return self._stage(_Parsing)  # type: ignore[no-any-return]

    def executing(self) -> ExecutingContextManager:
        return self._stage(_Executing)  # type: ignore[no-any-return]
