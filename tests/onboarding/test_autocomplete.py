"""Tasks that complete themselves from usage events, through the consumer of the spine."""

from __future__ import annotations

from app.events.consumers import ensure_checkpoints
from app.events.models import OutboxEvent
from app.onboarding.autocomplete import CONSUMER
from app.onboarding.models import Workflow, WorkflowTask
from app.onboarding.states import TaskAction, TaskStatus
from tests.milestones.support import drain, events, ingest
from tests.support.factories import Tenant


async def status(customer_id: object, key: str) -> TaskStatus:
    row = await WorkflowTask.get(key=key, workflow__customer_id=customer_id)
    return row.status


async def test_events_sent_while_the_stage_is_locked_complete_the_task_when_it_unlocks(
    tenant: Tenant,
) -> None:
    await ensure_checkpoints([CONSUMER])
    customer = await tenant.customer()
    await ingest(tenant, events(customer.id, "data_source_connected", 1))
    await ingest(tenant, events(customer.id, "teammate_invited", 2))
    await drain(CONSUMER)
    assert await status(customer.id, "connect_data_source") is TaskStatus.LOCKED
    for key in ("verify_email", "complete_profile", "watch_intro"):
        await tenant.act(customer.id, key, TaskAction.COMPLETE)
    await drain(CONSUMER)  # the setup stage unlocked: its tasks complete from the counts
    assert await status(customer.id, "connect_data_source") is TaskStatus.COMPLETED
    assert await status(customer.id, "invite_team") is TaskStatus.COMPLETED
    done = await OutboxEvent.filter(
        customer_id=customer.id, type="task.completed", actor="system"
    ).values("payload")
    by_task = {d["payload"]["task"]: d["payload"] for d in done}
    assert set(by_task) == {"connect_data_source", "invite_team"}
    trigger = by_task["connect_data_source"]["trigger"]
    assert trigger["event"] == "data_source_connected" and trigger["count"] == 1
    assert by_task["invite_team"]["completedBy"] == "usage"
    assert by_task["invite_team"]["trigger"]["count"] == 2
    # both required tasks of setup done: the stage completes, with its reward and celebration
    workflow = await Workflow.get(customer_id=customer.id)
    assert workflow.points == (10 + 15 + 10 + 50) + (30 + 20 + 100)
    celebrations = await OutboxEvent.filter(
        customer_id=customer.id, type="celebration", actor="system"
    ).values_list("payload", flat=True)
    assert [c["kind"] for c in celebrations] == ["STAGE_COMPLETED", "BADGE_EARNED"]


async def test_an_available_task_completes_as_soon_as_the_count_is_reached(
    tenant: Tenant,
) -> None:
    await ensure_checkpoints([CONSUMER])
    customer = await tenant.customer()
    for key in ("verify_email", "complete_profile", "watch_intro"):
        await tenant.act(customer.id, key, TaskAction.COMPLETE)
    await tenant.act(customer.id, "connect_data_source", TaskAction.START)
    await ingest(tenant, events(customer.id, "unrelated_thing", 3))
    await drain(CONSUMER)
    assert await status(customer.id, "connect_data_source") is TaskStatus.IN_PROGRESS
    await ingest(tenant, events(customer.id, "data_source_connected", 1))
    await drain(CONSUMER)
    assert await status(customer.id, "connect_data_source") is TaskStatus.COMPLETED
    events_ = (
        await OutboxEvent.filter(customer_id=customer.id)
        .order_by("sequence")
        .values("type", "actor")
    )
    completed = [e for e in events_ if e["type"] == "task.completed"]
    assert completed[-1]["actor"] == "system"
    await drain(CONSUMER)  # its own events come back to it and change nothing
    assert await OutboxEvent.filter(customer_id=customer.id).count() == len(events_)
