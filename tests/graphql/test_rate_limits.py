"""Rate limits of the real GraphQL view (in-memory counters here, Redis in production):
separate budgets per subject for reads, writes and subscriptions, per organization, per
client address and for sign-ins; RATE_LIMITED with `retryAfter`, HTTP 429 and Retry-After."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
from starlette.requests import Request

from app.accounts import ratelimits
from app.accounts.models import Role
from app.accounts.tokens import credentials_for
from app.accounts.viewer import Viewer
from app.asgi import LiftoffGraphQL
from app.audit.models import AuditEntry
from app.db import transaction
from app.errors import RateLimited
from app.events.hub import Hub
from app.graphql.context import Context
from app.graphql.sessions import Sessions
from app.kit.ratelimit import Limiter, budget
from tests.graphql.client import SETTINGS, tokens_of
from tests.support.factories import Tenant

READ = "{ viewer { role } }"
ACTIVITY = "subscription { activity { type } }"
WRITE = "mutation { updateWorkflowSettings(input: {remindersEnabled: true}) { id } }"


def view(**budgets: str) -> LiftoffGraphQL:
    return LiftoffGraphQL(SETTINGS.model_copy(update=budgets))


async def send(
    app: LiftoffGraphQL, query: str, *, token: str | None = None, address: str = "10.0.0.1"
) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, client=(address, 5000))
    headers = {"authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(transport=transport, base_url="http://liftoff.test") as client:
        return await client.post("/", json={"query": query}, headers=headers)


def refused(response: httpx.Response) -> dict[str, Any]:
    body: dict[str, Any] = response.json()
    assert response.status_code == 429, body
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "RATE_LIMITED", body
    assert 0 < error["extensions"]["retryAfter"] <= 60
    assert int(response.headers["retry-after"]) >= 1
    return dict(error["extensions"])


async def test_reads_and_writes_have_budgets_of_their_own(tenant: Tenant) -> None:
    customer = await tenant.customer()
    token = tokens_of(tenant, customer)[Role.CUSTOMER]
    app = view(rate_reads="3/minute", rate_writes="2/minute")
    for _ in range(3):
        assert (await send(app, READ, token=token)).status_code == 200
    assert refused(await send(app, READ, token=token))["scope"] == "read:subject"
    for _ in range(2):  # writes still have their budget
        assert "errors" not in (await send(app, WRITE, token=token)).json()
    assert refused(await send(app, WRITE, token=token))["scope"] == "write:subject"
    other = tokens_of(tenant, customer)[Role.CSM]  # another subject is not affected
    assert (await send(app, READ, token=other)).json()["data"]["viewer"]["role"] == "CSM"


async def test_an_organization_and_an_address_have_budgets(tenant: Tenant) -> None:
    tokens = tokens_of(tenant, await tenant.customer())
    app = view(rate_per_organization="4/minute")
    answers = [await send(app, READ, token=tokens[role]) for role in (Role.ADMIN, Role.CSM) * 2]
    assert all(a.status_code == 200 for a in answers)
    assert refused(await send(app, READ, token=tokens[Role.CUSTOMER]))["scope"] == "organization"
    app = view(rate_per_address="2/minute")
    for _ in range(2):
        assert (await send(app, "{ __typename }", address="10.9.9.9")).status_code == 200
    assert refused(await send(app, "{ __typename }", address="10.9.9.9"))["scope"] == "address"
    assert (await send(app, "{ __typename }", address="10.9.9.8")).status_code == 200


async def test_sign_ins_have_a_budget_per_address() -> None:
    app = view(rate_sign_ins="2/minute")
    login = 'mutation { login(email: "nobody@example.com", password: "x") { token } }'
    address = f"10.{uuid.uuid4().int % 250}.1.1"
    for _ in range(2):
        body = (await send(app, login, address=address)).json()
        assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert refused(await send(app, login, address=address))["scope"] == "sign-in"


async def test_subscriptions_have_a_budget(tenant: Tenant) -> None:
    app = view(rate_subscribes="2/minute")
    token = tokens_of(tenant, await tenant.customer())[Role.CSM]
    hub = Hub(None)
    await hub.connect()
    codes = []
    try:
        for _ in range(3):
            context = Context(
                request=Request({"type": "http", "headers": [], "client": ("10.1.1.1", 1)}),
                response=None,
                settings=SETTINGS,
                hub=hub,
            )
            await context.authenticate(f"Bearer {token}")
            result = await app.schema.subscribe(
                "subscription { activity { type } }", context_value=context
            )
            if hasattr(result, "__anext__"):
                try:
                    first = await asyncio.wait_for(result.__anext__(), timeout=0.2)
                    codes.append([e.extensions["code"] for e in first.errors or []])
                except TimeoutError:
                    codes.append([])
                finally:
                    await result.aclose()
            else:
                codes.append([e.extensions["code"] for e in result.errors or []])
    finally:
        await hub.disconnect()
    assert codes == [[], [], ["RATE_LIMITED"]], codes


async def test_the_limiter_counts_in_redis_across_processes(redis_url: str) -> None:
    key = uuid.uuid4().hex
    first, second = Limiter(redis_url), Limiter(redis_url)  # two processes' limiters
    assert await first.hit("3/minute", "test", key) is None
    assert await second.hit("3/minute", "test", key) is None
    assert await first.hit("3/minute", "test", key) is None
    wait = await second.hit("3/minute", "test", key)
    assert wait is not None and 0 < wait <= 60


async def test_budgets_of_one_request_count_in_one_round_trip_in_the_same_windows(
    redis_url: str,
) -> None:
    key = uuid.uuid4().hex
    limiter = Limiter(redis_url)
    spend = [("5/minute", ("wide", key)), ("2/minute", ("narrow", key))]
    assert await limiter.hit_all(spend) is None
    assert await limiter.hit("2/minute", "narrow", key) is None  # `hit` sees the same window
    refused = await limiter.hit_all(spend)
    assert refused is not None and refused[0] == 1 and 0 < refused[1] <= 60
    for _ in range(3):  # the refused request counted on the wide budget: 2 + 3 = 5
        assert await limiter.hit("5/minute", "wide", key) is None
    assert await limiter.hit("5/minute", "wide", key) is not None
    memory = Limiter(None)  # in memory: in order, up to the first refusal
    assert await memory.hit_all(spend) is None
    assert await memory.hit_all(spend) is None
    refused = await memory.hit_all(spend)
    assert refused is not None and refused[0] == 1


async def test_a_process_spends_a_share_of_a_budget_locally_and_the_budget_holds(
    redis_url: str,
) -> None:
    key = uuid.uuid4().hex
    first = Limiter(redis_url, local_share=0.1)
    counted = Limiter(redis_url)  # reads the shared counters

    async def remaining() -> int:
        stats = await counted.strategy.get_window_stats(budget("100/minute"), "shared", key)
        return stats.remaining

    assert await first.hit_all([("100/minute", ("shared", key))]) is None
    assert await remaining() == 90  # a share of 10 taken at once, this hit being one of them
    for _ in range(9):  # the rest of the share: no new counts in Redis
        assert await first.hit_all([("100/minute", ("shared", key))]) is None
    assert await remaining() == 90
    assert await first.hit_all([("100/minute", ("shared", key))]) is None
    assert await remaining() == 80  # spent: the next hit took a new share

    # hits arriving together: one takes a share, the others are counted alone meanwhile
    key = uuid.uuid4().hex
    together = [first.hit_all([("100/minute", ("shared", key))]) for _ in range(16)]
    assert await asyncio.gather(*together) == [None] * 16
    assert await remaining() == 100 - 10 - 15

    # two processes with shares of 2 (10 % of 20) pass exactly the budget together, then
    # both refuse, and so does a third that counts hit by hit
    key = uuid.uuid4().hex
    processes = [Limiter(redis_url, local_share=0.1), Limiter(redis_url, local_share=0.1)]
    passed = 0
    for n in range(30):
        if await processes[n % 2].hit_all([("20/minute", ("pair", key))]) is None:
            passed += 1
    assert passed == 20
    refused = await Limiter(redis_url).hit_all([("20/minute", ("pair", key))])
    assert refused is not None and refused[0] == 0 and 0 < refused[1] <= 60

    # near the end of a budget a share is whatever room is left, never more
    key = uuid.uuid4().hex
    exact = Limiter(redis_url)
    for _ in range(97):
        assert await exact.hit("100/minute", "edge", key) is None
    late = Limiter(redis_url, local_share=0.1)
    for _ in range(3):
        assert await late.hit_all([("100/minute", ("edge", key))]) is None
    assert await late.hit_all([("100/minute", ("edge", key))]) is not None
    assert await exact.hit("100/minute", "edge", key) is not None


async def test_websocket_caps_per_subject_and_organization(tenant: Tenant) -> None:
    sessions = Sessions()
    tokens = tokens_of(tenant, await tenant.customer())
    admin = credentials_for(SETTINGS, tokens[Role.ADMIN])
    csm = credentials_for(SETTINGS, tokens[Role.CSM])

    class Socket:
        def __init__(self) -> None:
            self.scope: dict[str, Any] = {}

    sockets = [Socket() for _ in range(3)]
    for socket in sockets[:2]:
        sessions.check_caps(admin.viewer, per_subject=2, per_organization=3)
        sessions.add(socket, admin)  # type: ignore[arg-type]
    try:
        sessions.check_caps(admin.viewer, per_subject=2, per_organization=3)
    except RateLimited as exc:
        assert "2 websockets open already" in exc.message
    else:
        raise AssertionError("a third socket of one subject was allowed")
    sessions.check_caps(csm.viewer, per_subject=2, per_organization=3)
    sessions.add(sockets[2], csm)  # type: ignore[arg-type]
    try:
        sessions.check_caps(csm.viewer, per_subject=2, per_organization=3)
    except RateLimited as exc:
        assert "organization has 3 websockets" in exc.message
    else:
        raise AssertionError("a fourth socket of one organization was allowed")
    for socket in sockets:
        sessions.discard(socket.scope)
    assert not sessions.open


SET_LIMIT = """mutation($name: RateLimitName!, $limit: String) {
  setRateLimit(name: $name, limit: $limit, reason: "one integration at a time") {
    name limit default overridden reason } }"""
RATE_LIMITS = "{ rateLimits { name limit default overridden } }"


async def test_an_admin_lowers_the_organizations_own_budget_and_puts_it_back(
    tenant: Tenant, other_tenant: Tenant
) -> None:
    tokens = tokens_of(tenant, await tenant.customer())
    others = tokens_of(other_tenant, await other_tenant.customer())
    app = view(rate_reads="50/minute")
    body = await send_vars(app, SET_LIMIT, {"name": "READS", "limit": "2/minute"}, tokens)
    assert body["data"]["setRateLimit"] == {
        "name": "READS",
        "limit": "2/minute",
        "default": "50/minute",
        "overridden": True,
        "reason": "one integration at a time",
    }
    for _ in range(2):
        assert (await send(app, READ, token=tokens[Role.CSM])).status_code == 200
    assert refused(await send(app, READ, token=tokens[Role.CSM]))["scope"] == "read:subject"
    for _ in range(3):  # another organization keeps the default
        assert (await send(app, READ, token=others[Role.CSM])).status_code == 200
    listed = (await send(app, RATE_LIMITS, token=tokens[Role.ADMIN])).json()["data"]
    assert {"name": "READS", "limit": "2/minute", "default": "50/minute", "overridden": True} in (
        listed["rateLimits"]
    )
    cleared = await send_vars(app, SET_LIMIT, {"name": "READS", "limit": None}, tokens)
    assert cleared["data"]["setRateLimit"]["limit"] == "50/minute"
    assert not cleared["data"]["setRateLimit"]["overridden"]
    assert (await send(app, READ, token=tokens[Role.CSM])).status_code == 200
    actions = await AuditEntry.filter(organization_id=tenant.id, target_type="rate_limit").order_by(
        "id"
    )
    assert [a.action for a in actions] == ["rate_limit.set", "rate_limit.cleared"]


async def test_admins_cannot_raise_a_budget_but_the_server_operator_can(tenant: Tenant) -> None:
    tokens = tokens_of(tenant, await tenant.customer())
    app = view(rate_per_organization="6/minute")
    raised = await send_vars(
        app, SET_LIMIT, {"name": "ORGANIZATION", "limit": "600/minute"}, tokens
    )
    assert raised["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    bad = await send_vars(app, SET_LIMIT, {"name": "WRITES", "limit": "lots"}, tokens)
    assert bad["errors"][0]["extensions"] == {"code": "VALIDATION_FAILED", "field": "limit"}
    csm = await send_vars(app, SET_LIMIT, {"name": "WRITES", "limit": "1/minute"}, tokens, Role.CSM)
    assert csm["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    async with transaction():  # what `liftoff rate-limit --org … --budget organization` does
        await ratelimits.set_override(
            Viewer(subject="cli", organization_id=tenant.id, role=Role.ADMIN),
            app.settings,
            budget="organization",
            limit="20/minute",
            allow_raise=True,
        )
    for _ in range(10):  # over the default of 6, within the organization's 20
        assert (await send(app, READ, token=tokens[Role.CUSTOMER])).status_code == 200


async def send_vars(
    app: LiftoffGraphQL,
    query: str,
    variables: dict[str, Any],
    tokens: dict[Role, str],
    role: Role = Role.ADMIN,
) -> dict[str, Any]:
    transport = httpx.ASGITransport(app=app, client=("10.0.0.1", 5000))
    headers = {"authorization": f"Bearer {tokens[role]}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://liftoff.test") as client:
        response = await client.post(
            "/", json={"query": query, "variables": variables}, headers=headers
        )
    body: dict[str, Any] = response.json()
    return body
