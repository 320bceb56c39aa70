"""Real `liftoff worker` processes: a worker SIGKILLed during a burst leaves every action done
exactly once (emails at least once on the wire, same id); two workers fire a time-based
trigger once per customer."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest

from app.automation import timed
from app.automation.models import ActionExecution, AutomationRun, RunStatus
from app.customers.models import Customer
from app.deliveries.models import Delivery, DeliveryStatus
from app.kit.clock import utcnow
from app.onboarding.models import Workflow
from tests.automation.peers import SmtpServer
from tests.automation.support import add_rule, definition
from tests.support.factories import Tenant
from tests.support.stack import WorkerProcess, child_env

pytestmark = pytest.mark.e2e

MAX_BURST = 400
EMAIL = {"type": "send_email", "subject": "Welcome {{ customer.name }}", "text": "Hello"}


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        yield server


def worker_env(database_url: str, redis_url: str, smtp: SmtpServer) -> dict[str, str]:
    return child_env(
        database_url=database_url,
        redis_url=redis_url,
        secret_key="automation-worker-tests-" + "x" * 40,
        smtp_url=smtp.url,
        outbox_poll_seconds=0.2,
        delivery_poll_seconds=0.2,
        automation_schedule_seconds=1,
        webhook_allow_private="true",
    )


async def wait_until(check: object, *, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await check():  # type: ignore[operator]
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


async def test_sigkill_mid_burst_leaves_every_action_done_exactly_once(
    tenant: Tenant, database_url: str, redis_url: str, smtp: SmtpServer
) -> None:
    rule = await add_rule(
        tenant,
        definition(
            "customer.created",
            {"type": "tag_customer", "tag": "welcomed"},
            {"type": "award_points", "points": 3},
            EMAIL,
        ),
    )
    env = worker_env(database_url, redis_url, smtp)
    first = WorkerProcess("automation-w1", env).spawn()
    second = WorkerProcess("automation-w2", env)
    try:
        first.wait_ready()
        customers = []
        killed_at = None
        while len(customers) < (killed_at or MAX_BURST) + 20:
            customers.append(await tenant.customer(name=f"Burst {len(customers)}"))
            if killed_at is None and len(customers) >= MAX_BURST:
                for _ in range(600):  # a slow machine: give the first worker time to get going
                    if await AutomationRun.filter(rule_id=rule.id).count() >= 10:
                        break
                    await asyncio.sleep(0.1)
            if killed_at is None and await AutomationRun.filter(rule_id=rule.id).count() >= 10:
                first.kill()  # SIGKILL while it is working and events keep coming
                killed_at = len(customers)
        assert killed_at is not None, "the first worker never got going"
        second.spawn().wait_ready()

        async def all_sent() -> bool:
            return await Delivery.filter(
                organization_id=tenant.id, status=DeliveryStatus.SUCCEEDED
            ).count() == len(customers)

        await wait_until(all_sent, seconds=240, what="every email to be delivered")
    finally:
        for process in (first, second):
            with contextlib.suppress(Exception):
                process.stop()
    runs = await AutomationRun.filter(rule_id=rule.id)
    burst = len(customers)
    assert len(runs) == burst and {r.customer_id for r in runs} == {c.id for c in customers}
    unfinished = [r.id for r in runs if r.status is not RunStatus.SUCCEEDED]
    if unfinished:  # say which action failed and why, with both workers' logs
        why = await ActionExecution.filter(run_id__in=unfinished).values(
            "run_id", "path", "type", "status", "error", "error_kind"
        )
        raise AssertionError(f"{why}\n{first.log(20_000)}\n{second.log(20_000)}")
    actions = await ActionExecution.filter(rule_id=rule.id)
    assert len(actions) == 3 * burst
    assert len({a.idempotency_key for a in actions}) == 3 * burst
    for c in await Customer.filter(id__in=[c.id for c in customers]):
        assert c.tags == ["welcomed"], c.tags
    points = await Workflow.filter(customer_id__in=[c.id for c in customers]).values_list(
        "points", flat=True
    )
    assert set(points) == {3}
    rows = await Delivery.filter(organization_id=tenant.id)
    assert len(rows) == burst
    received = smtp.by_id()
    assert {r.message_id for r in rows} <= set(received)  # each id at least once on the wire


async def test_two_workers_fire_a_time_based_trigger_once_per_customer(
    tenant: Tenant, database_url: str, redis_url: str, smtp: SmtpServer
) -> None:
    customers = [await tenant.customer() for _ in range(8)]
    stalled = customers[:5]
    await Workflow.filter(customer_id__in=[c.id for c in stalled]).update(
        last_activity_at=utcnow() - timedelta(days=4)
    )
    rule = await add_rule(
        tenant,
        definition(
            {"type": "no_progress", "days": 3},
            {"type": "tag_customer", "tag": "nudged"},
            EMAIL,
        ),
    )
    # Two in-process racers first: the database decides, whatever the schedule does.
    await asyncio.gather(timed.fire_time_triggers(), timed.fire_time_triggers())
    env = worker_env(database_url, redis_url, smtp)
    workers = [WorkerProcess(f"automation-time-{i}", env).spawn() for i in range(2)]
    try:
        for w in workers:
            w.wait_ready()

        async def delivered() -> bool:
            return await Delivery.filter(
                organization_id=tenant.id, status=DeliveryStatus.SUCCEEDED
            ).count() >= len(stalled)

        try:
            await wait_until(delivered, seconds=180, what="the nudges to be sent")
        except AssertionError:
            rows = await Delivery.filter(organization_id=tenant.id).values(
                "status", "attempts", "last_error"
            )
            raise AssertionError(f"{rows}\n{workers[0].log()}\n{workers[1].log()}") from None
        await asyncio.sleep(3)  # several schedule periods on both workers
    finally:
        for w in workers:
            with contextlib.suppress(Exception):
                w.stop()
    runs = await AutomationRun.filter(rule_id=rule.id)
    assert sorted(str(r.customer_id) for r in runs) == sorted(str(c.id) for c in stalled)
    assert {r.status for r in runs} == {RunStatus.SUCCEEDED}
    assert await Delivery.filter(organization_id=tenant.id).count() == len(stalled)
    # Progress starts a new episode: the same customer can be nudged again later, once.
    await Workflow.filter(customer_id=stalled[0].id).update(
        last_activity_at=utcnow() - timedelta(days=5)
    )
    assert await timed.fire_time_triggers() >= 1
    assert await timed.fire_time_triggers() == 0
    assert await AutomationRun.filter(rule_id=rule.id, customer_id=stalled[0].id).count() == 2
