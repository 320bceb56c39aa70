"""`ingestEvents` and API keys through the real GraphQL view against real PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import timedelta
from typing import Any

import httpx

from app.accounts.models import ApiKey, Role
from app.audit.models import AuditEntry
from app.customers.models import Customer
from app.events.models import OutboxEvent
from app.kit.clock import utcnow
from app.onboarding.models import Workflow
from app.usage.models import UsageDaily, UsageEvent
from app.usage.service import INGESTED
from tests.graphql.client import error_codes, gql, graphql_app, token, tokens_of
from tests.support.factories import Tenant

INGEST = """mutation($input: IngestEventsInput!) { ingestEvents(input: $input) {
  accepted duplicates rejected items { index status customerId code reason } } }"""
CREATE_KEY = """mutation($name: String!) { createApiKey(name: $name) {
  secret apiKey { id name prefix scopes createdBy createdAt lastUsedAt revokedAt } } }"""
REVOKE_KEY = "mutation($id: ID!) { revokeApiKey(id: $id) { id revokedAt } }"
LIST_KEYS = "{ apiKeys { id name prefix scopes lastUsedAt revokedAt } }"


async def send(
    query: str, variables: dict[str, Any], *, headers: dict[str, str]
) -> tuple[int, dict[str, Any]]:
    transport = httpx.ASGITransport(app=graphql_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://liftoff.test") as client:
        response = await client.post(
            "/", json={"query": query, "variables": variables}, headers=headers
        )
    body: dict[str, Any] = response.json()
    for error in body.get("errors") or []:
        assert error["extensions"]["code"], error
    return response.status_code, body


async def ingest_with_key(secret: str, events: list[dict[str, Any]], **more: Any) -> dict[str, Any]:
    _, body = await send(
        INGEST, {"input": {"events": events, **more}}, headers={"x-api-key": secret}
    )
    return body


async def new_key(tenant: Tenant, name: str = "backend") -> tuple[str, dict[str, Any]]:
    body = await gql(CREATE_KEY, {"name": name}, token=admin_token(tenant))
    created = body["data"]["createApiKey"]
    return created["secret"], created["apiKey"]


def admin_token(tenant: Tenant) -> str:
    return token(tenant.id, Role.ADMIN, subject=tenant.admin.subject)


def events_for(n: int, *, customer_id: object = None, external_id: str | None = None) -> list[Any]:
    run = uuid.uuid4().hex
    now = utcnow()
    who = {"customerId": str(customer_id)} if customer_id else {"externalId": external_id}
    return [
        {
            **who,
            "name": "project_created",
            "occurredAt": (now - timedelta(minutes=i)).isoformat(),
            "idempotencyKey": f"{run}-{i}",
            "properties": {"i": i},
        }
        for i in range(n)
    ]


async def test_each_item_is_answered_on_its_own(tenant: Tenant) -> None:
    customer = await tenant.customer(external_id=f"acct-{uuid.uuid4().hex[:6]}")
    secret, _ = await new_key(tenant)
    now = utcnow().isoformat()
    cid = str(customer.id)
    items: list[dict[str, Any]] = [
        {"customerId": cid, "name": "report_shared", "occurredAt": now, "idempotencyKey": "a"},
        {
            "externalId": customer.external_id,
            "name": "report_shared",
            "occurredAt": now,
            "idempotencyKey": "b",
            "properties": {"plan": "pro", "seats": 3},
        },
        {"externalId": "nobody", "name": "x", "occurredAt": now, "idempotencyKey": "c"},
        {"customerId": cid, "name": "Bad-Name", "occurredAt": now, "idempotencyKey": "d"},
        {"customerId": cid, "name": "x", "occurredAt": "yesterday", "idempotencyKey": "e"},
        {"customerId": cid, "name": "x", "occurredAt": "2026-01-01T10:00", "idempotencyKey": "f"},
        {
            "customerId": cid,
            "name": "x",
            "occurredAt": (utcnow() + timedelta(minutes=6)).isoformat(),
            "idempotencyKey": "g",
        },
        {
            "customerId": cid,
            "name": "x",
            "occurredAt": (utcnow() - timedelta(days=401)).isoformat(),
            "idempotencyKey": "h",
        },
        {"customerId": cid, "name": "x", "occurredAt": now, "idempotencyKey": "i",
         "properties": {"s": "x" * 9000}},
        {"customerId": cid, "name": "x", "occurredAt": now, "idempotencyKey": "j",
         "properties": {"a": {"b": {"c": {"d": {"e": {"f": 1}}}}}}},
        {"customerId": cid, "name": "x", "occurredAt": now, "idempotencyKey": "k",
         "properties": [1, 2]},
        {"customerId": cid, "name": "x", "occurredAt": now, "idempotencyKey": "a"},
        {"customerId": cid, "externalId": "both", "name": "x", "occurredAt": now,
         "idempotencyKey": "l"},
        {"customerId": cid, "occurredAt": now, "idempotencyKey": "m"},
        {"customerId": 42, "name": "x", "occurredAt": now, "idempotencyKey": "n"},
        "not an object",
        {"customerId": cid, "name": "x", "occurredAt": now, "idempotencyKey": "o", "extra": 1},
    ]  # fmt: skip
    body = await ingest_with_key(secret, items)
    answer = body["data"]["ingestEvents"]
    got = [(i["index"], i["status"], i["code"]) for i in answer["items"]]
    assert got == [
        (0, "ACCEPTED", None),
        (1, "ACCEPTED", None),
        (2, "REJECTED", "NOT_FOUND"),
        (3, "REJECTED", "INVALID_NAME"),
        (4, "REJECTED", "INVALID_OCCURRED_AT"),
        (5, "REJECTED", "INVALID_OCCURRED_AT"),
        (6, "REJECTED", "OCCURRED_IN_FUTURE"),
        (7, "REJECTED", "OUTSIDE_RETENTION"),
        (8, "REJECTED", "PROPERTIES_TOO_LARGE"),
        (9, "REJECTED", "PROPERTIES_TOO_DEEP"),
        (10, "REJECTED", "INVALID_PROPERTIES"),
        (11, "DUPLICATE", None),
        (12, "REJECTED", "INVALID_CUSTOMER"),
        (13, "REJECTED", "MALFORMED_ITEM"),
        (14, "REJECTED", "INVALID_CUSTOMER"),
        (15, "REJECTED", "MALFORMED_ITEM"),
        (16, "REJECTED", "MALFORMED_ITEM"),
    ]
    assert (answer["accepted"], answer["duplicates"], answer["rejected"]) == (2, 1, 14)
    assert all(i["reason"] for i in answer["items"] if i["status"] == "REJECTED")
    assert [i["customerId"] for i in answer["items"][:2]] == [cid, cid]
    stored = await UsageEvent.filter(customer_id=customer.id).order_by("idempotency_key")
    assert [(e.idempotency_key, e.properties) for e in stored] == [
        ("a", {}),
        ("b", {"plan": "pro", "seats": 3}),
    ]
    day = await UsageDaily.get(customer_id=customer.id, name="report_shared")
    assert day.count == 2
    only = (await ingest_with_key(secret, items))["data"]["ingestEvents"]
    assert (only["accepted"], only["duplicates"], only["rejected"]) == (0, 3, 14)
    _, body = await send(
        "mutation($input: IngestEventsInput!) { ingestEvents(input: $input) "
        "{ items(only: [REJECTED]) { index code } } }",
        {"input": {"events": items}},
        headers={"x-api-key": secret},
    )
    rejected = body["data"]["ingestEvents"]["items"]
    assert [i["index"] for i in rejected] == [2, *range(3, 11), *range(12, 17)]
    announced = await OutboxEvent.filter(organization_id=tenant.id, type=INGESTED)
    assert [e.payload["accepted"] for e in announced] == [2]
    assert announced[0].actor == f"api-key:{secret[:11]}"


async def test_the_same_batch_twice_answers_duplicate_and_stores_once(tenant: Tenant) -> None:
    customer = await tenant.customer()
    secret, _ = await new_key(tenant)
    events = events_for(50, customer_id=customer.id)
    first = (await ingest_with_key(secret, events))["data"]["ingestEvents"]
    again = (await ingest_with_key(secret, events))["data"]["ingestEvents"]
    assert (first["accepted"], first["duplicates"]) == (50, 0)
    assert (again["accepted"], again["duplicates"]) == (0, 50)
    assert {i["status"] for i in again["items"]} == {"DUPLICATE"}
    assert await UsageEvent.filter(customer_id=customer.id).count() == 50
    assert sum(d.count for d in await UsageDaily.filter(customer_id=customer.id)) == 50


async def test_twenty_concurrent_copies_of_a_batch_store_each_event_once(tenant: Tenant) -> None:
    customers = [await tenant.customer() for _ in range(3)]
    secret, _ = await new_key(tenant)
    events = [e for c in customers for e in events_for(100, customer_id=c.id)]
    bodies = await asyncio.gather(*(ingest_with_key(secret, events) for _ in range(20)))
    answers = [b["data"]["ingestEvents"] for b in bodies]
    assert sum(a["accepted"] for a in answers) == 300
    assert sum(a["duplicates"] for a in answers) == 19 * 300
    ids = [c.id for c in customers]
    assert await UsageEvent.filter(customer_id__in=ids).count() == 300
    assert sum(d.count for d in await UsageDaily.filter(customer_id__in=ids)) == 300
    announced = await OutboxEvent.filter(organization_id=tenant.id, type=INGESTED)
    assert sum(e.payload["accepted"] for e in announced) == 300


async def test_api_key_life_cycle(tenant: Tenant) -> None:
    customer = await tenant.customer()
    secret, key = await new_key(tenant, "billing server")
    assert secret.startswith("lk_") and key["prefix"] == secret[:11]
    assert (key["name"], key["scopes"], key["lastUsedAt"], key["revokedAt"]) == (
        "billing server",
        ["EVENTS_INGEST"],
        None,
        None,
    )
    row = await ApiKey.get(id=key["id"])
    assert secret not in json.dumps(await ApiKey.filter(id=key["id"]).values(), default=str)
    assert row.key_hash != secret and len(row.key_hash) == 64
    # used as a bearer value and as X-Api-Key
    _, body = await send(
        INGEST,
        {"input": {"events": events_for(2, customer_id=customer.id)}},
        headers={"authorization": f"Bearer {secret}"},
    )
    assert body["data"]["ingestEvents"]["accepted"] == 2
    body = await ingest_with_key(secret, events_for(1, customer_id=customer.id))
    assert body["data"]["ingestEvents"]["accepted"] == 1
    listed = (await gql(LIST_KEYS, token=admin_token(tenant)))["data"]["apiKeys"]
    mine = next(k for k in listed if k["id"] == key["id"])
    assert mine["lastUsedAt"] is not None and mine["revokedAt"] is None
    assert secret not in json.dumps(listed)
    # a key reaches nothing but ingestion
    _, body = await send("{ customers { totalCount } }", {}, headers={"x-api-key": secret})
    assert error_codes(body) == ["FORBIDDEN"]
    _, body = await send(LIST_KEYS, {}, headers={"x-api-key": secret})
    assert error_codes(body) == ["FORBIDDEN"]
    # revoked: the next call is refused
    revoked = await gql(REVOKE_KEY, {"id": key["id"]}, token=admin_token(tenant))
    assert revoked["data"]["revokeApiKey"]["revokedAt"] is not None
    body = await ingest_with_key(secret, events_for(1, customer_id=customer.id))
    assert error_codes(body) == ["UNAUTHENTICATED"]
    assert await UsageEvent.filter(customer_id=customer.id).count() == 3
    actions = await AuditEntry.filter(organization_id=tenant.id, target_id=key["id"]).values_list(
        "action", flat=True
    )
    assert sorted(actions) == ["api_key.created", "api_key.revoked"]


async def test_unknown_keys_are_unauthenticated(tenant: Tenant) -> None:
    customer = await tenant.customer()
    for headers in (
        {"x-api-key": "lk_" + "x" * 43},
        {"authorization": "Bearer lk_not-a-key"},
    ):
        _, body = await send(
            INGEST, {"input": {"events": events_for(1, customer_id=customer.id)}}, headers=headers
        )
        assert error_codes(body) == ["UNAUTHENTICATED"], body
    assert await UsageEvent.filter(customer_id=customer.id).count() == 0


async def test_people_other_than_admins_cannot_ingest_nor_manage_keys(tenant: Tenant) -> None:
    customer = await tenant.customer()
    tokens = tokens_of(tenant, customer)
    for role in (Role.CUSTOMER, Role.CSM):
        body = await gql(
            INGEST,
            {"input": {"events": events_for(1, customer_id=customer.id)}},
            token=tokens[role],
        )
        assert error_codes(body) == ["FORBIDDEN"], (role, body)
        body = await gql(CREATE_KEY, {"name": "mine"}, token=tokens[role])
        assert error_codes(body) == ["FORBIDDEN"]
    assert await UsageEvent.filter(customer_id=customer.id).count() == 0
    body = await gql(
        INGEST,
        {"input": {"events": events_for(1, customer_id=customer.id)}},
        token=tokens[Role.ADMIN],
    )
    assert body["data"]["ingestEvents"]["accepted"] == 1


async def test_a_key_of_another_organization_changes_nothing(
    tenant: Tenant, other_tenant: Tenant
) -> None:
    victim = await tenant.customer(external_id=f"victim-{uuid.uuid4().hex[:6]}")
    await other_tenant.customer(external_id=f"mine-{uuid.uuid4().hex[:6]}")
    secret, _ = await new_key(other_tenant)
    before = await OutboxEvent.filter(organization_id=tenant.id).count()
    events = events_for(2, customer_id=victim.id) + events_for(2, external_id=victim.external_id)
    answer = (await ingest_with_key(secret, events))["data"]["ingestEvents"]
    assert [(i["status"], i["code"]) for i in answer["items"]] == [("REJECTED", "NOT_FOUND")] * 4
    # createMissingCustomers makes the other organization a customer of its own, never touches
    # the victim
    answer = (
        await ingest_with_key(
            secret, events_for(1, external_id=victim.external_id), createMissingCustomers=True
        )
    )["data"]["ingestEvents"]
    assert answer["accepted"] == 1
    made = await Customer.get(id=answer["items"][0]["customerId"])
    assert made.organization_id == other_tenant.id  # type: ignore[attr-defined]
    assert await UsageEvent.filter(customer_id=victim.id).count() == 0
    assert await UsageDaily.filter(customer_id=victim.id).count() == 0
    assert await UsageEvent.filter(organization_id=tenant.id).count() == 0
    assert await OutboxEvent.filter(organization_id=tenant.id).count() == before


async def test_missing_customers_are_created_once_under_concurrent_calls(tenant: Tenant) -> None:
    secret, _ = await new_key(tenant)
    external = f"new-{uuid.uuid4().hex[:8]}"
    batches = [events_for(5, external_id=external) for _ in range(10)]
    bodies = await asyncio.gather(
        *(ingest_with_key(secret, b, createMissingCustomers=True) for b in batches)
    )
    answers = [b["data"]["ingestEvents"] for b in bodies]
    assert [a["accepted"] for a in answers] == [5] * 10, bodies
    rows = await Customer.filter(organization_id=tenant.id, external_id=external)
    assert len(rows) == 1
    assert {i["customerId"] for a in answers for i in a["items"]} == {str(rows[0].id)}
    assert await Workflow.filter(customer_id=rows[0].id).count() == 1
    assert await UsageEvent.filter(customer_id=rows[0].id).count() == 50
    created = await OutboxEvent.filter(customer_id=rows[0].id, type="customer.created").count()
    assert created == 1
    # without the option an unknown external id is NOT_FOUND
    answer = (await ingest_with_key(secret, events_for(1, external_id="unknown-x")))["data"]
    assert answer["ingestEvents"]["items"][0]["code"] == "NOT_FOUND"


async def test_a_call_over_the_limits_is_refused_whole(tenant: Tenant) -> None:
    customer = await tenant.customer()
    secret, _ = await new_key(tenant)
    status, body = await send(
        INGEST,
        {"input": {"events": events_for(1001, customer_id=customer.id)}},
        headers={"x-api-key": secret},
    )
    assert error_codes(body) == ["VALIDATION_FAILED"] and status == 400
    big = events_for(200, customer_id=customer.id)
    for e in big:
        e["properties"] = {"blob": "y" * 7000}
    status, body = await send(INGEST, {"input": {"events": big}}, headers={"x-api-key": secret})
    assert error_codes(body) == ["VALIDATION_FAILED"] and status == 413
    assert await UsageEvent.filter(customer_id=customer.id).count() == 0
    answer = (await ingest_with_key(secret, events_for(1000, customer_id=customer.id)))["data"]
    assert answer["ingestEvents"]["accepted"] == 1000


async def test_events_written_inline_in_the_document(tenant: Tenant) -> None:
    """As an admin types them in GraphiQL: the events as object literals, no variables."""
    customer = await tenant.customer()
    at = utcnow().isoformat()
    document = (
        "mutation { ingestEvents(input: {events: ["
        f'{{customerId: "{customer.id}", name: "report_shared", occurredAt: "{at}", '
        'idempotencyKey: "inline-1", properties: {plan: "pro", seats: [1, 2]}}, '
        f'{{customerId: "{customer.id}", name: "bad name", occurredAt: "{at}", '
        'idempotencyKey: "inline-2"}'
        "]}) { accepted items { status code } } }"
    )
    body = await gql(document, token=admin_token(tenant))
    assert body["data"]["ingestEvents"] == {
        "accepted": 1,
        "items": [
            {"status": "ACCEPTED", "code": None},
            {"status": "REJECTED", "code": "INVALID_NAME"},
        ],
    }
    row = await UsageEvent.get(customer_id=customer.id)
    assert row.properties == {"plan": "pro", "seats": [1, 2]}
