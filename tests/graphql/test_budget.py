"""Query cost and request limits of the real GraphQL view: refused before anything runs,
in time linear in the size of the document."""

from __future__ import annotations

import gc
import json
import time
from typing import Any

import httpx
import pytest
from graphql import (
    ASTValidationRule,
    FragmentDefinitionNode,
    get_introspection_query,
    get_operation_ast,
    parse,
    validate,
)

from app.accounts.models import Role
from app.asgi import LiftoffGraphQL
from app.graphql.budget import measure
from app.graphql.guard import deadline_rule
from app.graphql.schema import build_schema
from tests.graphql.client import SETTINGS, error_codes, gql, post, tokens_of
from tests.support.factories import Tenant


def fragment_bomb(levels: int) -> str:
    """`...F{levels}` where each fragment spreads the one below it twice: 2**levels fields."""
    chain = " ".join(
        f"fragment F{i} on Query {{ ...F{i - 1} ...F{i - 1} }}" for i in range(1, levels + 1)
    )
    return f"query {{ ...F{levels} }} fragment F0 on Query {{ __typename }} {chain}"


def cost_of(document: str, variables: dict[str, Any] | None = None) -> int:
    parsed = parse(document)
    definitions = parsed.definitions
    fragments = {d.name.value: d for d in definitions if isinstance(d, FragmentDefinitionNode)}
    operation = get_operation_ast(parsed)
    assert operation is not None
    return measure(build_schema(SETTINGS)._schema, operation, fragments, variables).cost


def test_cost_multiplies_pages_and_lists() -> None:
    page = "query($n: Int) { customers(first: $n) { edges { node { id name } } } }"
    # customers + n * (edges + node + id + name)
    assert cost_of(page, {"n": 5}) == 1 + 5 * 4
    assert cost_of(page, {"n": 10_000}) == 1 + 100 * 4  # capped like the resolver caps it
    assert cost_of(page, {}) == 1 + 100 * 4  # unknown page size: the largest page
    nested = '{ workflow(customerId: "x") { stages { tasks { id } } } }'
    assert cost_of(nested) == 1 + (1 + 10 * (1 + 10 * 1))


def test_fragments_are_measured_once_and_multiplied() -> None:
    assert cost_of(fragment_bomb(24)) == 2**24
    assert cost_of(fragment_bomb(200)) == 2**200


def test_graphiql_introspection_fits_the_budget() -> None:
    assert cost_of(get_introspection_query(descriptions=True)) < SETTINGS.max_query_cost


async def test_a_fragment_bomb_is_refused_with_its_cost(tenant: Tenant) -> None:
    body = await gql(fragment_bomb(24), token=None)
    assert error_codes(body) == ["QUERY_TOO_COMPLEX"]
    assert body["errors"][0]["extensions"]["cost"] == 2**24
    assert body["errors"][0]["extensions"]["limit"] == SETTINGS.max_query_cost
    assert body["data"] is None


async def test_many_full_pages_are_refused_one_is_answered(tenant: Tenant) -> None:
    customer = await tenant.customer()
    admin = tokens_of(tenant, customer)[Role.ADMIN]
    page = "customers(first: 100) { edges { node { workflow { stages { tasks { id key } } } } } }"
    body = await gql("{ " + page + " }", token=admin)
    assert "errors" not in body, body
    many = " ".join(f"a{i}: {page}" for i in range(30))
    body = await gql("{ " + many + " }", token=admin)
    assert error_codes(body) == ["QUERY_TOO_COMPLEX"]
    assert body["errors"][0]["extensions"]["cost"] > SETTINGS.max_query_cost


async def test_a_variable_page_size_counts(tenant: Tenant) -> None:
    customer = await tenant.customer()
    admin = tokens_of(tenant, customer)[Role.ADMIN]
    page = "customers(first: $n) { edges { node { workflow { stages { tasks { id } } } } } }"
    many = " ".join(f"a{i}: {page}" for i in range(25))
    document = "query($n: Int) { " + many + " }"
    assert "errors" not in await gql(document, {"n": 1}, token=admin)
    assert error_codes(await gql(document, {"n": 100}, token=admin)) == ["QUERY_TOO_COMPLEX"]


async def test_a_body_nested_too_deep_is_a_400() -> None:
    response = await post_raw(b"[" * 10_000 + b"]" * 10_000)
    assert response.status_code == 400
    assert error_codes(response.json()) == ["VALIDATION_FAILED"]
    nested: Any = "x"
    for _ in range(SETTINGS.max_json_depth + 1):
        nested = [nested]
    response = await post({"query": "{ __typename }", "variables": {"v": nested}})
    assert response.status_code == 400
    assert "nested deeper than" in response.json()["errors"][0]["message"]


async def test_oversized_variables_are_refused_naming_them() -> None:
    query = "mutation($input: CreateCustomerInput!) { createCustomer(input: $input) { id } }"
    big = {"email": "a@b.co", "name": "x" * (SETTINGS.max_variable_chars + 1)}
    response = await post({"query": query, "variables": {"input": big}})
    assert response.status_code == 400
    error = response.json()["errors"][0]
    assert error["extensions"] == {"code": "VALIDATION_FAILED", "field": "variables.input.name"}
    many = {"status": ["AVAILABLE"] * (SETTINGS.max_variable_items + 1)}
    response = await post({"query": "{ __typename }", "variables": many})
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["field"] == "variables.status"


@pytest.mark.parametrize("declared", [True, False])
async def test_a_body_over_the_limit_is_a_413(declared: bool) -> None:
    view = LiftoffGraphQL(SETTINGS.model_copy(update={"max_body_bytes": 1000}))
    payload = json.dumps({"query": "{ __typename }", "variables": {"pad": "x" * 2000}}).encode()

    async def chunks() -> Any:
        for start in range(0, len(payload), 100):
            yield payload[start : start + 100]

    transport = httpx.ASGITransport(app=view)
    async with httpx.AsyncClient(transport=transport, base_url="http://liftoff.test") as client:
        content: Any = payload if declared else chunks()
        response = await client.post(
            "/", content=content, headers={"content-type": "application/json"}
        )
    assert response.status_code == 413
    assert error_codes(response.json()) == ["VALIDATION_FAILED"]
    assert response.json()["errors"][0]["extensions"]["limit"] == 1000


async def test_an_answer_over_the_size_limit_is_replaced(tenant: Tenant) -> None:
    customer = await tenant.customer()
    admin = tokens_of(tenant, customer)[Role.ADMIN]
    view = LiftoffGraphQL(SETTINGS.model_copy(update={"max_response_bytes": 100}))
    transport = httpx.ASGITransport(app=view)
    async with httpx.AsyncClient(transport=transport, base_url="http://liftoff.test") as client:
        query = f'{{ workflow(customerId: "{customer.id}") {{ stages {{ key name }} }} }}'
        response = await client.post(
            "/", json={"query": query}, headers={"authorization": f"Bearer {admin}"}
        )
    assert error_codes(response.json()) == ["QUERY_TOO_COMPLEX"]
    assert "over the limit of 100" in response.json()["errors"][0]["message"]


async def post_raw(content: bytes) -> httpx.Response:
    transport = httpx.ASGITransport(app=LiftoffGraphQL(SETTINGS))
    async with httpx.AsyncClient(transport=transport, base_url="http://liftoff.test") as client:
        return await client.post("/", content=content, headers={"content-type": "application/json"})


def test_a_full_collection_during_validation_does_not_count_against_the_document() -> None:
    """The validation deadline is CPU time less the garbage collector's: a full collection of
    a large heap that starts while an ordinary document is validated is not the document's."""
    heap = [[i] for i in range(3_000_000)]  # a heap whose full collection takes a while
    started = time.thread_time()
    gc.collect()
    collection = time.thread_time() - started
    budget = collection / 3  # the collection alone is three times the budget

    class CollectOnce(ASTValidationRule):
        done = False

        def enter_field(self, *_: Any) -> None:
            if not CollectOnce.done:
                CollectOnce.done = True
                gc.collect()

    schema = build_schema(SETTINGS)._schema
    document = parse("{ viewer { role } }")
    errors = validate(schema, document, [CollectOnce, deadline_rule(budget)])
    assert CollectOnce.done
    assert errors == [], errors
    del heap
