"""The engine on real PostgreSQL: events fire rules, each action happens once, with limits."""

from __future__ import annotations

from datetime import timedelta

from app.accounts.models import Operator
from app.automation import engine, timed
from app.automation.models import ActionExecution, ActionStatus, AutomationRun, RunStatus
from app.customers.models import Customer
from app.db import transaction
from app.deliveries.models import Delivery
from app.events.models import OutboxEvent
from app.kit.clock import utcnow
from app.notifications.models import CsmTask, Notification
from app.onboarding.models import Workflow, WorkflowTask
from app.onboarding.states import TaskAction
from tests.automation.support import Drain, actions_of, add_rule, definition, runs_of
from tests.support.factories import Tenant

EVERY_DB_ACTION = [
    {"type": "notify", "title": "Nice work, {{ customer.name }}", "body": "{{ event.type }}"},
    {"type": "notify", "to": "operators", "title": "{{ customer.name }} finished a task"},
    {"type": "tag_customer", "tag": "engaged"},
    {"type": "set_property", "property": "lastTask", "value": "{{ event.payload.task }}"},
    {"type": "award_points", "points": 7, "reason": "bonus"},
    {
        "type": "create_task",
        "title": "Call {{ customer.name }}",
        "dueInDays": 2,
        "assignee": "CSM@Example.com",
    },
    {"type": "create_task", "target": "workflow", "title": "Book a demo", "points": 5},
    {"type": "untag_customer", "tag": "new"},
]


async def test_every_database_action_happens_once_even_if_events_are_handled_again(
    tenant: Tenant,
) -> None:
    rule = await add_rule(
        tenant,
        definition(
            "task.completed",
            *EVERY_DB_ACTION,
            conditions={"fact": "event.payload.task", "op": "eq", "value": "verify_email"},
        ),
    )
    customer = await tenant.customer(name="Ada")
    async with transaction():
        await Customer.filter(id=customer.id).update(tags=["new"])
    drain = Drain(tenant)
    await drain()
    assert await runs_of(rule) == []  # customer.created does not match
    points_before = (await Workflow.get(customer_id=customer.id)).points
    await tenant.act(customer.id, "verify_email", TaskAction.COMPLETE)
    events = await drain.pending()
    await drain()
    # The same batch handled a second time (a redelivery) changes nothing.
    async with transaction():
        await engine.handle(events)

    [run] = await runs_of(rule)
    assert run.status is RunStatus.SUCCEEDED and run.rule_version == 1 and run.depth == 0
    assert run.trigger.startswith("event:") and run.trigger_type == "task.completed"
    assert run.conditions[0]["held"] and run.conditions[0]["seen"] == "verify_email"
    actions = await actions_of(run)
    assert [a.path for a in actions] == [str(i) for i in range(len(EVERY_DB_ACTION))]
    assert all(a.status is ActionStatus.DONE for a in actions), [a.error for a in actions]
    assert len({a.idempotency_key for a in actions}) == len(actions)

    mine = await Notification.filter(customer_id=customer.id)
    assert [(n.title, n.body) for n in mine] == [("Nice work, Ada", "task.completed")]
    ops = await Notification.filter(about_customer_id=customer.id, operator__isnull=False)
    operators = await Operator.filter(organization_id=tenant.id).values_list("email", flat=True)
    assert sorted(n.operator for n in ops) == sorted(operators), "one note per operator, once"
    fresh = await Customer.get(id=customer.id)
    assert fresh.tags == ["engaged"] and fresh.properties == {"lastTask": "verify_email"}
    wf = await Workflow.get(customer_id=customer.id)
    assert wf.points == points_before + 10 + 7  # the task's own 10, then the rule's 7
    [task] = await CsmTask.filter(customer_id=customer.id)
    assert task.title == "Call Ada" and task.assignee == "csm@example.com"
    assert task.due_at is not None and task.due_at - run.created_at > timedelta(days=1.9)
    extra = await WorkflowTask.filter(workflow_id=wf.id, key__startswith="auto-")
    assert [(t.title, t.required, t.points) for t in extra] == [("Book a demo", False, 5)]
    # Each emitted event carries its automation depth, so loops can be cut.
    emitted = await OutboxEvent.filter(customer_id=customer.id, actor=f"automation:{rule.id}")
    assert {e.type for e in emitted} >= {"customer.tagged", "points.awarded", "csm_task.created"}
    assert all(e.payload["automation"]["depth"] == 1 for e in emitted)


async def test_conditions_that_do_not_hold_fire_nothing(tenant: Tenant) -> None:
    rule = await add_rule(
        tenant,
        definition(
            "customer.created",
            {"type": "tag_customer", "tag": "vip"},
            conditions={"fact": "customer.userType", "op": "eq", "value": "enterprise"},
        ),
    )
    plain = await tenant.customer(user_type="startup")
    big = await tenant.customer(user_type="enterprise")
    await Drain(tenant)()
    runs = await runs_of(rule)
    assert [r.customer_id for r in runs] == [big.id]
    assert (await Customer.get(id=plain.id)).tags == []
    assert (await Customer.get(id=big.id)).tags == ["vip"]


async def test_cooldown_and_max_runs_are_recorded_as_skips(tenant: Tenant) -> None:
    cooling = await add_rule(
        tenant,
        definition("task.progressed", {"type": "award_points", "points": 1}, cooldownSeconds=3600),
    )
    capped = await add_rule(
        tenant, definition("task.progressed", {"type": "award_points", "points": 1}, maxRuns=2)
    )
    customer = await tenant.customer()
    drain = Drain(tenant)
    await tenant.act(customer.id, "verify_email", TaskAction.START)
    for progress in (10, 20, 30):
        await tenant.act(customer.id, "verify_email", TaskAction.PROGRESS, progress=progress)
        await drain()
    cool = await runs_of(cooling)
    assert [r.status for r in cool] == [RunStatus.SUCCEEDED, RunStatus.SKIPPED, RunStatus.SKIPPED]
    assert cool[1].reason is not None and cool[1].reason.startswith("cooling down until")
    cap = await runs_of(capped)
    assert [r.status for r in cap] == [RunStatus.SUCCEEDED, RunStatus.SUCCEEDED, RunStatus.SKIPPED]
    assert cap[2].reason == "max runs reached (2 of 2)"
    assert await ActionExecution.filter(run_id=cap[2].id).count() == 0


async def test_a_rule_that_triggers_itself_stops_at_the_depth_limit(tenant: Tenant) -> None:
    rule = await add_rule(
        tenant,
        definition(
            "customer.property_set",
            {"type": "set_property", "property": "hops", "value": "{{ event.id }}"},
        ),
    )
    starter = await add_rule(
        tenant,
        definition(
            "customer.created", {"type": "set_property", "property": "hops", "value": "start"}
        ),
    )
    customer = await tenant.customer()
    await Drain(tenant)(rounds=20)
    assert len(await runs_of(starter)) == 1
    runs = await runs_of(rule)
    assert [(r.depth, r.status) for r in runs] == [
        (1, RunStatus.SUCCEEDED),
        (2, RunStatus.SUCCEEDED),
        (3, RunStatus.LOOP_LIMIT),
    ]
    assert "hops deep (limit 3)" in (runs[-1].reason or "")
    assert await ActionExecution.filter(run_id=runs[-1].id).count() == 0
    assert (
        await OutboxEvent.filter(customer_id=customer.id, type="customer.property_set").count() == 3
    )


async def test_a_delay_waits_then_takes_a_branch_on_fresh_facts(tenant: Tenant) -> None:
    rule = await add_rule(
        tenant,
        definition(
            "customer.created",
            {"type": "tag_customer", "tag": "welcomed"},
            {"type": "delay", "days": 2},
            {
                "type": "if",
                "conditions": {
                    "fact": "workflow.tasks.verify_email",
                    "op": "eq",
                    "value": "COMPLETED",
                },
                "then": [{"type": "tag_customer", "tag": "verified"}],
                "else": [{"type": "notify", "title": "Please verify your email"}],
            },
        ),
    )
    done, idle = await tenant.customer(), await tenant.customer()
    await Drain(tenant)()
    runs = {r.customer_id: r for r in await runs_of(rule)}
    assert {r.status for r in runs.values()} == {RunStatus.WAITING}
    assert await timed.resume_waiting(now=utcnow()) == 0  # not due yet
    await tenant.act(done.id, "verify_email", TaskAction.COMPLETE)
    later = utcnow() + timedelta(days=2, minutes=1)
    resumed = await timed.resume_waiting(now=later)
    assert resumed >= 2
    assert await timed.resume_waiting(now=later) == 0  # nothing twice
    for customer, tags, notes in ((done, ["welcomed", "verified"], 0), (idle, ["welcomed"], 1)):
        run = await AutomationRun.get(id=runs[customer.id].id)
        assert run.status is RunStatus.SUCCEEDED, run.status
        assert (await Customer.get(id=customer.id)).tags == tags
        assert await Notification.filter(customer_id=customer.id).count() == notes
        kinds = [(a.path, a.status) for a in await actions_of(run)]
        assert kinds[1] == ("1", ActionStatus.DONE)  # the delay, over


async def test_an_organizations_rules_never_see_another_organizations_events(
    tenant: Tenant, other_tenant: Tenant
) -> None:
    theirs = await add_rule(other_tenant, definition("*", {"type": "tag_customer", "tag": "x"}))
    mine = await tenant.customer()
    drain_all = Drain(tenant)
    drain_all.org = tenant.id
    await drain_all()
    # Feed the other organization's engine every event of both organizations at once.
    both = [
        *await Drain(tenant).pending(),
        *await Drain(other_tenant).pending(),
    ]
    async with transaction():
        await engine.handle(both)
    assert await runs_of(theirs) == []
    assert (await Customer.get(id=mine.id)).tags == []
    assert await Delivery.filter(organization_id=tenant.id).count() == 0


async def test_time_triggers_fire_once_per_episode(tenant: Tenant) -> None:
    old = await tenant.customer(signed_up_at=utcnow() - timedelta(days=30))
    fresh = await tenant.customer()
    renewal = (utcnow() + timedelta(days=20)).date().isoformat()
    async with transaction():
        await Customer.filter(id=fresh.id).update(properties={"renewalDate": renewal})
    tag = {"type": "tag_customer", "tag": "t"}
    signup = await add_rule(tenant, definition({"type": "after_signup", "days": 2}, tag))
    idle = await add_rule(tenant, definition({"type": "no_usage", "days": 7}, tag))
    before = await add_rule(
        tenant,
        definition({"type": "date_property", "property": "renewalDate", "days": -30}, tag),
    )
    assert await timed.fire_time_triggers() == 1  # only the idle one qualifies today
    assert [r.customer_id for r in await runs_of(idle)] == [old.id]
    # Signed up before the rule existed: the "2 days after signup" moment has passed for
    # `old`; for `fresh` it comes in two days. The renewal is 20 days away: 30 days before
    # it was 10 days ago, before the rule existed, so it does not fire either.
    later = utcnow() + timedelta(days=2, minutes=1)
    assert await timed.fire_time_triggers(now=later) == 1
    assert [r.customer_id for r in await runs_of(signup)] == [fresh.id]
    assert await runs_of(before) == []
    # A new renewal date is a new episode.
    soon = (utcnow() + timedelta(days=31)).isoformat()
    async with transaction():
        await Customer.filter(id=fresh.id).update(properties={"renewalDate": soon})
    assert await timed.fire_time_triggers(now=later) == 1
    assert await timed.fire_time_triggers(now=later) == 0
    [run] = await runs_of(before)
    assert run.trigger == f"time:date_property:{fresh.id}:renewalDate={soon}"
    assert run.trigger_type == "time.date_property"
