"""Limits of the real GraphQL API: depth, aliases and tokens, refused before anything runs.

Every request goes through the production view (`LiftoffGraphQL`) with the limits of
`SETTINGS`, against real PostgreSQL.
"""

from __future__ import annotations

import asyncio

from graphql.language import Lexer, Source, TokenKind

from app.accounts.models import Role
from app.customers.models import Customer
from app.events.models import OutboxEvent
from app.onboarding.models import Workflow
from tests.graphql.client import SETTINGS, error_codes, gql, tokens_of
from tests.support.factories import Tenant


def deep_settings_mutation(depth: int) -> str:
    """updateWorkflowSettings with `depth` nested object fields, the root one included."""
    selection = "id"
    for level in reversed(range(depth - 1)):
        selection = f"{'customer' if level % 2 == 0 else 'workflow'} {{ {selection} }}"
    return (
        "mutation { updateWorkflowSettings(input: {remindersEnabled: false}) "
        f"{{ {selection} }} }}"
    )


def count_tokens(document: str) -> int:
    lexer = Lexer(Source(document))
    count = 0
    while lexer.advance().kind is not TokenKind.EOF:
        count += 1
    return count


async def settings_unchanged(customer: Customer, events: int) -> None:
    wf = await Workflow.get(customer_id=customer.id)
    assert (wf.reminders_enabled, wf.version) == (True, 0)
    assert await OutboxEvent.filter(customer_id=customer.id).count() == events


async def assert_refused_then_allowed(
    tenant: Tenant,
    refused: str,
    allowed: str,
    code: str,
    message: str,
    operation_name: str | None = None,
) -> None:
    customer = await tenant.customer()
    customer_token = tokens_of(tenant, customer)[Role.CUSTOMER]
    events = await OutboxEvent.filter(customer_id=customer.id).count()

    body = await gql(refused, token=customer_token, operation_name=operation_name)
    assert body["data"] is None
    assert error_codes(body) == [code], body
    assert message in body["errors"][0]["message"]
    await settings_unchanged(customer, events)

    body = await gql(allowed, token=customer_token, operation_name=operation_name)
    assert "errors" not in body, body
    assert (await Workflow.get(customer_id=customer.id)).reminders_enabled is False


async def test_a_query_deeper_than_the_limit_is_refused(tenant: Tenant) -> None:
    limit = SETTINGS.max_query_depth
    await assert_refused_then_allowed(
        tenant,
        refused=deep_settings_mutation(limit + 1),
        allowed=deep_settings_mutation(limit),
        code="GRAPHQL_VALIDATION_FAILED",
        message=f"exceeds maximum operation depth of {limit}",
    )


async def test_too_many_aliases_are_refused(tenant: Tenant) -> None:
    limit = SETTINGS.max_aliases

    def with_aliases(n: int) -> str:
        padding = " ".join(f"a{i}: __typename" for i in range(n - 1))
        return (
            "mutation { s: updateWorkflowSettings(input: {remindersEnabled: false}) { id } "
            f"{padding} }}"
        )

    await assert_refused_then_allowed(
        tenant,
        refused=with_aliases(limit + 1),
        allowed=with_aliases(limit),
        code="GRAPHQL_VALIDATION_FAILED",
        message=f"{limit + 1} aliases found. Allowed: {limit}",
    )


async def test_too_many_tokens_are_refused(tenant: Tenant) -> None:
    limit = SETTINGS.max_tokens

    def with_tokens(n: int) -> str:
        # The padding is a list value in a second operation that never runs: repeated fields
        # would trip graphql-core's own validation budget before our limit is reached.
        base = (
            "mutation Mute { updateWorkflowSettings(input: {remindersEnabled: false}) { id } } "
            'query Pad { tasks(customerId: "x", status: [%s]) { id } }'
        )
        padding = n - count_tokens(base % "")
        document = base % " ".join(["AVAILABLE"] * padding)
        assert count_tokens(document) == n
        return document

    await assert_refused_then_allowed(
        tenant,
        refused=with_tokens(limit + 1),
        allowed=with_tokens(limit),
        code="GRAPHQL_VALIDATION_FAILED",
        message=f"Document contains more than {limit} tokens. Parsing aborted.",
        operation_name="Mute",
    )


async def test_limits_hold_under_concurrent_requests(tenant: Tenant) -> None:
    customer = await tenant.customer()
    customer_token = tokens_of(tenant, customer)[Role.CUSTOMER]
    limit = SETTINGS.max_query_depth

    def deep_query(depth: int) -> str:
        selection = "id"
        for level in reversed(range(depth - 1)):
            selection = f"{'customer' if level % 2 == 0 else 'workflow'} {{ {selection} }}"
        return f"{{ workflow {{ {selection} }} }}"

    documents = [deep_query(limit + 1), deep_query(limit)] * 10
    bodies = await asyncio.gather(*(gql(d, token=customer_token) for d in documents))
    for document, body in zip(documents, bodies, strict=True):
        if document == deep_query(limit):
            assert "errors" not in body, body
        else:
            assert error_codes(body) == ["GRAPHQL_VALIDATION_FAILED"], body
            assert body["data"] is None
