"""Errors over the real GraphQL API: codes everywhere, the unexpected masked and logged.

Every request goes through the production view (`LiftoffGraphQL`) and its error shaping,
against real PostgreSQL.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

import pytest

import app.customers.service as customers_service
import app.events.outbox as outbox_module
from app.accounts.models import Role
from app.events.models import OutboxEvent
from app.onboarding.models import Workflow
from tests.graphql.client import SETTINGS_MUTATION, error_codes, gql, tokens_of
from tests.support.factories import Tenant

MASKED = "Unexpected error; it has been logged."


async def test_every_kind_of_error_carries_its_code(tenant: Tenant) -> None:
    customer = await tenant.customer()
    admin = tokens_of(tenant, customer)[Role.ADMIN]
    cid = str(customer.id)
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("{ viewer { subject ", {}, "GRAPHQL_VALIDATION_FAILED"),
        ("{ nope }", {}, "GRAPHQL_VALIDATION_FAILED"),
        ("mutation { updateStage { id } }", {}, "GRAPHQL_VALIDATION_FAILED"),
        ('{ tasks(customerId: "x", status: [NOPE]) { id } }', {}, "GRAPHQL_VALIDATION_FAILED"),
        (f'{{ customer(id: "{uuid.uuid4()}") {{ id }} }}', {}, "NOT_FOUND"),
        ("{ customers(first: -1) { totalCount } }", {}, "VALIDATION_FAILED"),
        ('{ customers(after: "garbage") { totalCount } }', {}, "VALIDATION_FAILED"),
        (
            'mutation { installWorkflowTemplate(input: {definition: "key: ["}) { id } }',
            {},
            "INVALID_TEMPLATE",
        ),
        (
            "mutation($cid: ID) { updateTask(input: {customerId: $cid, "
            'taskKey: "connect_data_source", action: START}) { task { id } } }',
            {"cid": cid},
            "TASK_LOCKED",
        ),
        (
            "mutation($cid: ID) { updateTask(input: {customerId: $cid, "
            'taskKey: "verify_email", action: SKIP}) { task { id } } }',
            {"cid": cid},
            "TASK_REQUIRED",
        ),
    ]
    for query, variables, code in cases:
        body = await gql(query, variables, token=admin)
        assert error_codes(body) == [code], (query, body)
        assert MASKED not in json.dumps(body), (query, body)


@pytest.mark.parametrize("variables", [{}, {"n": "ten"}], ids=["missing", "badly typed"])
async def test_a_bad_variable_is_the_callers_error(
    tenant: Tenant, variables: dict[str, Any]
) -> None:
    customer = await tenant.customer()
    admin = tokens_of(tenant, customer)[Role.ADMIN]
    body = await gql(
        "query($n: Int!) { customers(first: $n) { totalCount } }", variables, token=admin
    )
    assert error_codes(body) in (["GRAPHQL_VALIDATION_FAILED"], ["BAD_USER_INPUT"]), body
    assert body["errors"][0]["message"].startswith("Variable '$n' has invalid value"), body


async def test_an_unexpected_exception_is_masked_and_logged(
    tenant: Tenant, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    customer = await tenant.customer()

    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("connection to 10.0.0.7 failed: password hunter2")

    monkeypatch.setattr(customers_service, "get_customer", broken)
    with caplog.at_level(logging.ERROR, logger="app.graphql"):
        body = await gql(
            "query($cid: ID) { customer(id: $cid) { id } viewer { role } }",
            {"cid": str(customer.id)},
            token=tokens_of(tenant, customer)[Role.ADMIN],
        )
    assert body["data"] == {"customer": None, "viewer": {"role": "ADMIN"}}
    assert len(body["errors"]) == 1
    error = body["errors"][0]
    assert error["message"] == MASKED
    assert error["extensions"] == {"code": "INTERNAL_SERVER_ERROR"}
    assert error["path"] == ["customer"]
    assert "hunter2" not in json.dumps(body) and "RuntimeError" not in json.dumps(body)

    logged = [r for r in caplog.records if r.name == "app.graphql" and r.levelno == logging.ERROR]
    assert len(logged) == 1
    assert logged[0].exc_info is not None and logged[0].exc_info[0] is RuntimeError
    assert "hunter2" in str(logged[0].exc_info[1])
    assert "Traceback (most recent call last)" in caplog.text
    assert "in broken" in caplog.text


async def test_an_unexpected_failure_in_a_mutation_rolls_back(
    tenant: Tenant, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    customer = await tenant.customer()
    events = await OutboxEvent.filter(customer_id=customer.id).count()

    async def broken(**kwargs: object) -> None:
        raise RuntimeError("outbox unavailable")

    monkeypatch.setattr(outbox_module, "record", broken)
    with caplog.at_level(logging.ERROR, logger="app.graphql"):
        body = await gql(
            SETTINGS_MUTATION,
            {"input": {"remindersEnabled": False}},
            token=tokens_of(tenant, customer)[Role.CUSTOMER],
        )
    assert body["data"] is None
    assert [(e["message"], e["extensions"]) for e in body["errors"]] == [
        (MASKED, {"code": "INTERNAL_SERVER_ERROR"})
    ]
    wf = await Workflow.get(customer_id=customer.id)
    assert (wf.reminders_enabled, wf.version) == (True, 0)
    assert await OutboxEvent.filter(customer_id=customer.id).count() == events
    assert any(r.exc_info and r.exc_info[0] is RuntimeError for r in caplog.records)


async def test_expected_errors_are_not_logged_as_errors(
    tenant: Tenant, caplog: pytest.LogCaptureFixture
) -> None:
    customer = await tenant.customer()
    with caplog.at_level(logging.DEBUG, logger="app.graphql"):
        body = await gql(
            f'{{ customer(id: "{uuid.uuid4()}") {{ id }} }}',
            token=tokens_of(tenant, customer)[Role.ADMIN],
        )
    assert error_codes(body) == ["NOT_FOUND"]
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
