"""One GraphQL execution per (event, subscription document, variables), shared by subscribers.

Every local subscriber of a channel receives the same decoded event; these helpers make the
GraphQL payload built from it one object too, and let the executor run a subscription document
once for that object and hand the same result to every subscriber that sent the same document
and variables. This is only sound for payload types whose fields read nothing but the payload
(no context, no viewer): the event types of this package, listed in SHAREABLE.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, TypeVar

T = TypeVar("T")
SIZE = 4096

_payloads: OrderedDict[Hashable, Any] = OrderedDict()
_results: OrderedDict[Hashable, tuple[Any, Any, asyncio.Future[Any]]] = OrderedDict()


def shared_payload(key: Hashable, build: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """The payload object for `key`, built once (`build(*args, **kwargs)`) while it is recent."""
    found = _payloads.get(key)
    if found is None:
        found = _payloads[key] = build(*args, **kwargs)
        if len(_payloads) > SIZE:
            _payloads.popitem(last=False)
    return found  # type: ignore[no-any-return]


def shared_result(
    payload: Any, operation: Any, variables: dict[str, Any], run: Callable[[], Any]
) -> Awaitable[Any]:
    """The execution result of `operation` over `payload`, computed by the first caller."""
    key = (id(payload), id(operation), repr(sorted(variables.items())))
    entry = _results.get(key)
    if entry is None or entry[0] is not payload or entry[1] is not operation:
        outcome = run()
        future: asyncio.Future[Any]
        if asyncio.isfuture(outcome) or asyncio.iscoroutine(outcome):
            future = asyncio.ensure_future(outcome)
        else:
            future = asyncio.get_running_loop().create_future()
            future.set_result(outcome)
        entry = _results[key] = (payload, operation, future)
        if len(_results) > SIZE:
            _results.popitem(last=False)
    return asyncio.shield(entry[2])
