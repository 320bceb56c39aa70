"""Fuzzing every Query, Mutation and Subscription field with valid tokens (hypothesis-graphql):
any answer may be a refusal, none may be an internal error or an HTTP 5xx.

Bounded for CI: a fixed number of examples per root type, no shrinking database, no deadline.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any

import hypothesis.strategies as st
from graphql import GraphQLSchema, build_ast_schema, parse
from hypothesis import HealthCheck, given, settings
from hypothesis_graphql import mutations, nodes, queries
from starlette.requests import Request

from app.events.hub import Hub
from app.graphql.context import Context
from tests.graphql.client import SETTINGS, graphql_app, post, tokens_of
from tests.support.factories import Tenant

EXAMPLES = 120
INTERNAL = "INTERNAL_SERVER_ERROR"

SCALARS = {
    "DateTime": st.datetimes(timezones=st.sampled_from([None, UTC])).map(
        lambda d: nodes.String(d.isoformat())
    ),
    "JSON": st.text(max_size=50).map(nodes.String),
}


@dataclass
class Findings:
    sent: int = 0
    failures: list[tuple[str, Any]] = field(default_factory=list)


def sdl() -> str:
    return graphql_app().schema.as_str()


def subscriptions_as_queries() -> GraphQLSchema:
    """The schema with the Subscription fields as its Query type, for the query strategy."""
    text = (
        sdl()
        .replace("type Query {", "type UnusedQuery {")
        .replace("type Subscription {", "type Query {")
    )
    return build_ast_schema(parse(text))


def run_in(loop: asyncio.AbstractEventLoop) -> Callable[[Coroutine[Any, Any, Any]], Any]:
    return lambda coro: asyncio.run_coroutine_threadsafe(coro, loop).result(timeout=60)


async def over_http(document: str, token: str, findings: Findings) -> None:
    response = await post({"query": document}, authorization=f"Bearer {token}")
    findings.sent += 1
    if response.status_code >= 500:
        findings.failures.append((document, response.text))
        return
    body = response.json()
    codes = [(e.get("extensions") or {}).get("code") for e in body.get("errors") or []]
    if INTERNAL in codes or None in codes:
        findings.failures.append((document, body))


async def over_subscription(document: str, token: str, hub: Hub, findings: Findings) -> None:
    context = Context(
        request=Request({"type": "http", "headers": []}),
        response=None,
        settings=SETTINGS,
        hub=hub,
    )
    context.connection_params = {"Authorization": f"Bearer {token}"}
    findings.sent += 1
    result = await graphql_app().schema.subscribe(document, context_value=context)
    first: Any = result
    if hasattr(result, "__anext__"):
        try:
            first = await asyncio.wait_for(result.__anext__(), timeout=0.2)
        except (TimeoutError, StopAsyncIteration):
            return
        finally:
            await result.aclose()
    for error in getattr(first, "errors", None) or []:
        if (error.extensions or {}).get("code") in (INTERNAL, None):
            findings.failures.append((document, error.formatted))


async def test_fuzzing_every_field_finds_no_internal_error(tenant: Tenant) -> None:
    customer = await tenant.customer()
    tokens = list(tokens_of(tenant, customer).values())
    loop = asyncio.get_running_loop()
    run = run_in(loop)
    findings = Findings()
    hub = Hub(None)
    await hub.connect()
    common = settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    token = st.sampled_from(tokens)
    documents = {
        "query": queries(sdl(), custom_scalars=SCALARS),
        "mutation": mutations(sdl(), custom_scalars=SCALARS),
        "subscription": queries(subscriptions_as_queries(), custom_scalars=SCALARS).map(
            lambda d: "subscription " + d.removeprefix("query ")
        ),
    }

    def fuzz(kind: str) -> None:
        @common
        @given(document=documents[kind], bearer=token)
        def one(document: str, bearer: str) -> None:
            if kind == "subscription":
                run(over_subscription(document, bearer, hub, findings))
            else:
                run(over_http(document, bearer, findings))

        one()

    try:
        for kind in documents:
            await asyncio.to_thread(fuzz, kind)
    finally:
        await hub.disconnect()
    assert findings.sent >= 3 * EXAMPLES // 2
    assert not findings.failures, findings.failures[:5]
