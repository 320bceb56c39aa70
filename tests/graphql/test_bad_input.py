"""Ordinary bad input is the caller's error: VALIDATION_FAILED naming the field, nothing
written, never an internal error."""

from __future__ import annotations

from typing import Any

import pytest

from app.accounts.models import Role
from app.customers.models import Customer
from tests.graphql.client import error_codes, gql, post, tokens_of
from tests.support.factories import Tenant

CREATE = "mutation($input: CreateCustomerInput!) { createCustomer(input: $input) { id } }"


def new_customer(**fields: Any) -> dict[str, Any]:
    return {"email": "new@example.com", "name": "New", **fields}


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"signedUpAt": "2020-01-01T00:00:00"}, "signedUpAt"),
        ({"company": "c" * 300}, "company"),
        ({"externalId": "e" * 201}, "externalId"),
        ({"name": "n" * 201}, "name"),
        ({"userType": "u" * 65}, "userType"),
        ({"name": "Ada\x00Lovelace"}, "variables.input.name"),
        ({"company": "Nul\x00Corp"}, "variables.input.company"),
    ],
)
async def test_bad_customer_fields_are_named(
    tenant: Tenant, fields: dict[str, Any], field: str
) -> None:
    admin = tokens_of(tenant, await tenant.customer())[Role.ADMIN]
    before = await Customer.filter(organization_id=tenant.id).count()
    response = await post(
        {"query": CREATE, "variables": {"input": new_customer(**fields)}},
        authorization=f"Bearer {admin}",
    )
    body = response.json()
    assert error_codes(body) == ["VALIDATION_FAILED"], body
    assert body["errors"][0]["extensions"]["field"] == field, body
    assert await Customer.filter(organization_id=tenant.id).count() == before


async def test_a_nul_in_a_literal_names_the_argument(tenant: Tenant) -> None:
    admin = tokens_of(tenant, await tenant.customer())[Role.ADMIN]
    query = '{ customers(filter: {search: "a\\u0000b"}) { totalCount } }'
    body = await gql(query, token=admin)
    assert error_codes(body) == ["VALIDATION_FAILED"], body
    assert body["errors"][0]["extensions"]["field"] == "search"


@pytest.mark.parametrize(
    "filter_",
    [{"userType": "u" * 65}, {"acquisitionChannel": "a" * 65}, {"search": "s" * 201}],
)
async def test_over_long_filters_are_refused(tenant: Tenant, filter_: dict[str, str]) -> None:
    admin = tokens_of(tenant, await tenant.customer())[Role.ADMIN]
    query = "query($f: CustomerFilter) { customers(filter: $f) { totalCount } }"
    body = await gql(query, {"f": filter_}, token=admin)
    assert error_codes(body) == ["VALIDATION_FAILED"], body
    assert body["errors"][0]["extensions"]["field"] == next(iter(filter_))


async def test_a_template_nested_too_deep_is_invalid(tenant: Tenant) -> None:
    admin = tokens_of(tenant, await tenant.customer())[Role.ADMIN]
    query = "mutation($d: String!) { installWorkflowTemplate(input: {definition: $d}) { id } }"
    for definition in ("[" * 1000 + "]" * 1000, "key: " + "[" * 1000 + "]" * 1000):
        body = await gql(query, {"d": definition}, token=admin)
        assert error_codes(body) == ["INVALID_TEMPLATE"], body


async def test_a_subscription_over_http_is_refused_clearly(tenant: Tenant) -> None:
    admin = tokens_of(tenant, await tenant.customer())[Role.ADMIN]
    response = await post(
        {"query": "subscription { activity { type } }"}, authorization=f"Bearer {admin}"
    )
    assert response.status_code == 400
    body = response.json()
    assert error_codes(body) == ["VALIDATION_FAILED"], body
    assert "websocket" in body["errors"][0]["message"]
