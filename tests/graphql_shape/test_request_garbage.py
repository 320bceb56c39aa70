"""A request's objects are freed when it ends, not left to the cycle collector.

Under load most of updateTask's collector time went to requests caught in reference cycles
(graphql-core's executor referring to itself through its async helpers, the loaders through
their batch functions): everything a request held, its context, records and loaders, waited
for a collection. Here the collector saves what it finds instead of freeing it, so a cycle
that comes back shows up by type.
"""

from __future__ import annotations

import gc
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from app.accounts.models import Role
from app.accounts.tokens import token_for
from app.graphql.context import Context
from app.graphql.execution import PlainLeaves
from app.graphql.loaders import Loaders
from app.onboarding.records import StageRecord, TaskRecord, WorkflowRecord
from tests.graphql_shape import InProcessGraphQL, make_settings
from tests.graphql_shape.test_dataloaders import FULL_WORKFLOW
from tests.support.factories import Tenant

PROGRESS = """
mutation Progress($customerId: ID!, $percent: Int!) {
  updateTask(input: {customerId: $customerId, taskKey: "verify_email", action: PROGRESS,
                     progress: $percent}) {
    task { id key status progress }
    workflow { id status points version progress estimatedMinutesRemaining }
    unlockedTasks { key } unlockedStages { key } completedStages { key }
    pointsAwarded badgesAwarded { key } celebrations { kind } workflowCompleted
  }
}
"""

OURS = (Context, Loaders, PlainLeaves, TaskRecord, StageRecord, WorkflowRecord)


@contextmanager
def saved_garbage() -> Iterator[list[object]]:
    """What the cycle collector finds of the objects made while the block runs."""
    gc.collect()
    enabled = gc.isenabled()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    found: list[object] = []
    try:
        yield found
        gc.collect()
        found.extend(gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        if enabled:
            gc.enable()


async def test_update_task_and_the_workflow_query_leave_no_cycles_behind(tenant: Tenant) -> None:
    gql = InProcessGraphQL(make_settings())
    customer = await tenant.customer()
    token = token_for(
        gql.settings, subject=tenant.csm.subject, organization_id=tenant.id, role=Role.CSM
    )
    async with gql.client() as client:
        for percent in (10, 20):  # warm: token check, parse and validation caches
            body = await gql.execute(
                PROGRESS, {"customerId": str(customer.id), "percent": percent}, token=token,
                client=client,
            )  # fmt: skip
            assert "errors" not in body, body
        with saved_garbage() as garbage:
            for percent in (30, 40, 50):
                body = await gql.execute(
                    PROGRESS, {"customerId": str(customer.id), "percent": percent},
                    token=token, client=client,
                )  # fmt: skip
                assert body["data"]["updateTask"]["task"]["progress"] == percent, body
            body = await gql.execute(
                FULL_WORKFLOW, {"customerId": str(customer.id)}, token=token, client=client
            )
            assert body["data"]["workflow"]["stages"], body
    ours = Counter(type(o).__name__ for o in garbage if isinstance(o, OURS))
    assert not ours, f"left to the cycle collector: {dict(ours)}"
