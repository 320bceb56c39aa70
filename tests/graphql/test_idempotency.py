"""`Idempotency-Key` on mutations, through the real GraphQL view and PostgreSQL: a retry gets
the first answer and applies nothing; concurrent duplicates apply once; the same key with
another body, a key still running, a lost answer and expired keys each behave as documented."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import httpx

from app.accounts.models import Role
from app.customers.models import Customer
from app.db import transaction, transaction_hook
from app.errors import Conflict
from app.graphql import idempotent
from app.idempotency import service as keys
from app.idempotency.models import IdempotencyKey
from app.jobs import SCHEDULES
from app.kit.clock import utcnow
from tests.graphql.client import graphql_app, tokens_of
from tests.support.factories import Tenant

CREATE = "mutation($input: CreateCustomerInput!) { createCustomer(input: $input) { id email } }"


async def send(
    body: dict[str, Any], *, token: str, key: str | None, client: httpx.AsyncClient | None = None
) -> httpx.Response:
    headers = {"authorization": f"Bearer {token}"}
    if key is not None:
        headers["idempotency-key"] = key
    if client is not None:
        return await client.post("/", json=body, headers=headers)
    transport = httpx.ASGITransport(app=graphql_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://liftoff.test") as c:
        return await c.post("/", json=body, headers=headers)


def create(email: str) -> dict[str, Any]:
    return {"query": CREATE, "variables": {"input": {"email": email, "name": "Ada"}}}


async def test_a_retry_gets_the_first_answer_and_applies_once(tenant: Tenant) -> None:
    admin = tokens_of(tenant, await tenant.customer())[Role.ADMIN]
    email, key = f"ada-{uuid.uuid4().hex[:8]}@example.com", str(uuid.uuid4())
    first = await send(create(email), token=admin, key=key)
    again = await send(create(email), token=admin, key=key)
    assert first.status_code == 200 and "errors" not in first.json(), first.text
    assert again.json() == first.json() and again.status_code == 200
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert await Customer.filter(organization_id=tenant.id, email=email).count() == 1
    # without a key the same request is a new request (here: refused as a duplicate email)
    plain = await send(create(email), token=admin, key=None)
    assert plain.json()["errors"][0]["extensions"]["code"] != "IDEMPOTENCY_KEY_REUSED"


async def test_concurrent_duplicates_apply_once_and_all_get_the_same_answer(
    tenant: Tenant,
) -> None:
    admin = tokens_of(tenant, await tenant.customer())[Role.ADMIN]
    email, key = f"race-{uuid.uuid4().hex[:8]}@example.com", str(uuid.uuid4())
    transport = httpx.ASGITransport(app=graphql_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://liftoff.test") as client:
        answers = await asyncio.gather(
            *(send(create(email), token=admin, key=key, client=client) for _ in range(6))
        )
    bodies = [a.json() for a in answers]
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
    assert all(b == bodies[0] for b in bodies) and "errors" not in bodies[0], bodies
    assert sum(a.headers.get("idempotent-replayed") == "true" for a in answers) == 5
    assert await Customer.filter(organization_id=tenant.id, email=email).count() == 1


async def test_the_same_key_with_another_body_is_refused(tenant: Tenant) -> None:
    admin = tokens_of(tenant, await tenant.customer())[Role.ADMIN]
    key = str(uuid.uuid4())
    first = await send(create(f"a-{key[:8]}@example.com"), token=admin, key=key)
    assert "errors" not in first.json()
    other = await send(create(f"b-{key[:8]}@example.com"), token=admin, key=key)
    assert other.status_code == 422
    assert other.json()["errors"][0]["extensions"]["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert not await Customer.filter(email=f"b-{key[:8]}@example.com").exists()


async def test_keys_belong_to_their_subject(tenant: Tenant) -> None:
    tokens = tokens_of(tenant, await tenant.customer())
    key = str(uuid.uuid4())
    first = await send(create(f"s1-{key[:8]}@example.com"), token=tokens[Role.ADMIN], key=key)
    second = await send(create(f"s2-{key[:8]}@example.com"), token=tokens[Role.CSM], key=key)
    assert "errors" not in first.json() and "errors" not in second.json(), second.text
    assert first.json() != second.json()


async def test_a_refusal_is_kept_too_and_a_bad_key_is_refused(tenant: Tenant) -> None:
    admin = tokens_of(tenant, await tenant.customer())[Role.ADMIN]
    bad = {"query": CREATE, "variables": {"input": {"email": "not an email", "name": "X"}}}
    key = str(uuid.uuid4())
    first = await send(bad, token=admin, key=key)
    again = await send(bad, token=admin, key=key)
    assert first.json()["errors"][0]["extensions"]["code"] == "VALIDATION_FAILED"
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    for raw in ("", "x" * 256, "tab\tkey"):
        refused = await send(create("k@example.com"), token=admin, key=raw)
        assert refused.status_code == 400, refused.text
        error = refused.json()["errors"][0]
        assert error["extensions"] == {"code": "VALIDATION_FAILED", "field": "Idempotency-Key"}
    # queries ignore the header
    query = await send({"query": "{ viewer { role } }"}, token=admin, key=key)
    assert query.json()["data"]["viewer"]["role"] == "ADMIN"


async def test_a_running_first_request_makes_a_duplicate_wait_then_in_progress(
    tenant: Tenant,
) -> None:
    admin = tokens_of(tenant, await tenant.customer())[Role.ADMIN]
    key = str(uuid.uuid4())
    body = create(f"slow-{key[:8]}@example.com")
    print_ = keys.fingerprint(body["query"], body["variables"], None)
    claim = await keys.claim(tenant.admin, key, print_)  # a first request that is still running
    waited = asyncio.get_running_loop().time()
    saved, idempotent.WAIT_SECONDS = idempotent.WAIT_SECONDS, 0.3
    try:
        busy = await send(body, token=admin, key=key)
    finally:
        idempotent.WAIT_SECONDS = saved
    assert asyncio.get_running_loop().time() - waited >= 0.3
    assert busy.status_code == 409 and busy.headers["retry-after"] == "1"
    assert busy.json()["errors"][0]["extensions"]["code"] == "IDEMPOTENCY_IN_PROGRESS"
    # the first request answers while a duplicate waits: the duplicate gets that answer
    duplicate = asyncio.ensure_future(send(body, token=admin, key=key))
    await asyncio.sleep(0.1)
    await keys.finish(claim, status_code=200, response={"data": {"createCustomer": None}})
    answered = await duplicate
    assert answered.json() == {"data": {"createCustomer": None}}


async def test_a_lost_answer_after_commit_is_never_applied_again(tenant: Tenant) -> None:
    key, print_ = str(uuid.uuid4()), "f" * 64
    claim = await keys.claim(tenant.admin, key, print_)
    hook = transaction_hook.set(lambda connection: keys.mark_applied(claim, connection))
    try:
        async with transaction():
            pass  # the mutation's transaction commits, then its answer is lost
    finally:
        transaction_hook.reset(hook)
    assert not await keys.release(claim)  # not given back: the change had committed
    try:
        await keys.claim(tenant.admin, key, print_)
    except keys.Replay as replay:
        assert replay.stored.status_code == 409
        assert (
            replay.stored.response["errors"][0]["extensions"]["code"] == "IDEMPOTENCY_ANSWER_LOST"
        )
    else:
        raise AssertionError("the key was claimed again")
    # nothing committed: the key is given back and a retry runs
    other = await keys.claim(tenant.admin, key + "-2", print_)
    assert await keys.release(other)
    assert isinstance(await keys.claim(tenant.admin, key + "-2", print_), keys.Claim)


async def test_a_claim_taken_over_after_its_lease_cannot_commit(tenant: Tenant) -> None:
    key, print_ = str(uuid.uuid4()), "e" * 64
    stale = await keys.claim(tenant.admin, key, print_, now=utcnow() - keys.LEASE * 2)
    fresh = await keys.claim(tenant.admin, key, print_)  # the lease passed: taken over
    assert fresh.id == stale.id and fresh.owner != stale.owner
    hook = transaction_hook.set(lambda connection: keys.mark_applied(stale, connection))
    try:
        async with transaction():
            await Customer.filter(id=uuid.uuid4()).update(name="never")
        raise AssertionError("the stale request committed")
    except Conflict as exc:
        assert "taken over" in exc.message
    finally:
        transaction_hook.reset(hook)


async def test_expired_keys_are_pruned_by_the_scheduled_job(tenant: Tenant) -> None:
    print_ = "d" * 64
    old = await keys.claim(
        tenant.admin, str(uuid.uuid4()), print_, now=utcnow() - timedelta(days=2)
    )
    await keys.finish(old, status_code=200, response={"data": None})
    kept = await keys.claim(tenant.admin, str(uuid.uuid4()), print_)
    [job] = [s for s in SCHEDULES if s.name == "idempotency.prune"]
    assert (await job.run() or 0) >= 1
    assert not await IdempotencyKey.filter(id=old.id).exists()
    assert await IdempotencyKey.filter(id=kept.id).exists()
