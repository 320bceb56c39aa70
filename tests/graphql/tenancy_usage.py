"""Usage and API key fields of the tenancy walk: the victim organization has an API key and
ingested events; neither attacker may see the key, revoke it, or add events to the victim."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from app.accounts import apikeys
from app.accounts.models import ApiKey
from app.customers.models import Customer
from app.db import transaction
from app.kit.clock import utcnow
from app.usage.models import UsageDaily, UsageEvent
from app.usage.rules import EventIn
from app.usage.service import ingest_events

if TYPE_CHECKING:
    from tests.graphql.test_tenancy import Case, World


async def prepare(w: World) -> dict[str, Any]:
    """A key of the victim organization and an event of the victim; their secrets."""
    async with transaction():
        key, secret = await apikeys.create_key(w.victim.admin, name="Victim's backend")
        await ingest_events(
            w.victim.admin,
            events=[
                EventIn(
                    customer_id=str(w.customer.id),
                    name="victim_event",
                    occurred_at=utcnow(),
                    idempotency_key="victim-key-1",
                )
            ],
            actor="test",
            retention_days=400,
        )
    return {"key": str(key.id), "secrets": {str(key.id), secret, key.prefix, "Victim's backend"}}


async def snapshot(w: World) -> dict[str, Any]:
    org = w.victim.id
    return {
        "keys": await ApiKey.filter(organization_id=org).order_by("id").values(),
        "events": await UsageEvent.filter(organization_id=org).count(),
        "days": await UsageDaily.filter(organization_id=org).order_by("id").values(),
    }


def cases() -> list[Case]:
    from tests.graphql.test_tenancy import OTHER_ADMIN, OTHER_CUSTOMER, Case, Own, Refused

    refused = {OTHER_ADMIN: Refused("NOT_FOUND"), OTHER_CUSTOMER: Refused("FORBIDDEN")}

    async def other_keys(data: Any, w: World) -> None:
        rows = await ApiKey.filter(organization_id=w.other.id).values_list("id", flat=True)
        assert {k["id"] for k in data} == {str(i) for i in rows}

    async def key_in_other_org(data: Any, w: World) -> None:
        row = await ApiKey.get(id=data["apiKey"]["id"])
        assert row.organization_id == w.other.id  # type: ignore[attr-defined]

    async def nothing_for_the_victim(data: Any, w: World) -> None:
        by_id, by_external = data["items"]
        assert (by_id["status"], by_id["code"]) == ("REJECTED", "NOT_FOUND")
        # the walk's createCustomer gave the other organization a customer of its own with
        # the victim's external id: ingesting for it is the other organization's own business
        if by_external["status"] == "REJECTED":
            assert by_external["code"] == "NOT_FOUND"
        else:
            own = await Customer.get(id=by_external["customerId"])
            assert own.organization_id == w.other.id  # type: ignore[attr-defined]

    def ingest_victim(w: World) -> dict[str, Any]:
        at = utcnow().isoformat()
        return {
            "input": {
                "events": [
                    {"customerId": str(w.customer.id), "name": "x", "occurredAt": at,
                     "idempotencyKey": "victim-key-1"},
                    {"externalId": w.customer.external_id, "name": "x", "occurredAt": at,
                     "idempotencyKey": "victim-key-2"},
                ]
            }
        }  # fmt: skip

    return [
        Case(
            "Query.apiKeys",
            "apiKeys",
            "{ apiKeys { id name prefix scopes createdBy lastUsedAt revokedAt } }",
            lambda w: {},
            {OTHER_ADMIN: Own(other_keys), OTHER_CUSTOMER: Refused("FORBIDDEN")},
        ),
        Case(
            "Mutation.createApiKey",
            "createApiKey with the victim key's name",
            "mutation($n: String!) { createApiKey(name: $n) { secret apiKey { id name } } }",
            lambda w: {"n": "Victim's backend"},
            {OTHER_ADMIN: Own(key_in_other_org), OTHER_CUSTOMER: Refused("FORBIDDEN")},
        ),
        Case(
            "Mutation.revokeApiKey",
            "revokeApiKey of the victim's key",
            "mutation($id: ID!) { revokeApiKey(id: $id) { id revokedAt } }",
            lambda w: {"id": w.extra["usage_key"]},
            refused,
        ),
        Case(
            "Mutation.ingestEvents",
            "ingestEvents naming the victim by id and external id",
            "mutation($input: IngestEventsInput!) { ingestEvents(input: $input) { accepted "
            "items { status code customerId } } }",
            ingest_victim,
            {OTHER_ADMIN: Own(nothing_for_the_victim), OTHER_CUSTOMER: Refused("FORBIDDEN")},
        ),
    ]
