"""Nested reads go through per-request DataLoaders: the statement count does not grow.

Statements are counted, not mocked: a handler on Tortoise's `tortoise.db_client` logger
sees every statement the asyncpg client sends (`execute_query`, `execute_query_dict`,
`execute_insert`, `execute_many` and `execute_script` each log the SQL at DEBUG before
running it).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from app.accounts.models import Role
from app.accounts.service import create_organization
from app.accounts.tokens import token_for
from app.accounts.viewer import Viewer
from app.customers.models import Customer
from app.customers.service import NewCustomer, create_customer
from app.db import transaction
from app.onboarding.templates import install_template
from tests.graphql_shape import InProcessGraphQL, make_settings
from tests.support.factories import Tenant, operator_subject

FULL_WORKFLOW = """
query Full($customerId: ID!) {
  workflow(customerId: $customerId) {
    id status points paused remindersEnabled startedAt completedAt lastActivityAt version
    progress estimatedMinutesRemaining
    badges { key name description icon stageKey awardedAt }
    currentStage { id key name status }
    customer {
      id email name company externalId userType acquisitionChannel tags signedUpAt createdAt
    }
    template {
      id key version name description isDefault createdBy createdAt definition
      stageCount taskCount
    }
    stages {
      id key name description position status unlockedAt completedAt progress
      unlockConditions { previousStagesComplete minPoints daysSinceSignup tasksCompleted }
      reward { points badge { key name description icon stageKey awardedAt } }
      tasks {
        id key title description stageKey position points estimatedMinutes required
        dependsOn status progress failureReason attempts startedAt completedAt updatedAt
        helpResources { title url kind }
        successCriterion { event count }
      }
    }
  }
}
"""

COMPLETE = """
mutation Complete($customerId: ID!, $key: String!) {
  updateTask(input: {customerId: $customerId, taskKey: $key, action: COMPLETE}) {
    task { status }
  }
}
"""


class _StatementCounter(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.statements: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        sql = record.args[0] if isinstance(record.args, tuple) and record.args else record.msg
        self.statements.append(str(sql))


@contextmanager
def counting_statements() -> Iterator[list[str]]:
    """Collect the SQL of every statement Tortoise sends while the block runs."""
    logger = logging.getLogger("tortoise.db_client")
    handler = _StatementCounter()
    level, propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False  # keep the SQL out of pytest's captured log
    try:
        yield handler.statements
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate


def generated_template(stages: int, tasks_per_stage: int) -> dict[str, Any]:
    """A valid template with every optional feature used: deps, help, criteria, badges."""
    out = []
    for s in range(stages):
        tasks = []
        for t in range(tasks_per_stage):
            task: dict[str, Any] = {
                "key": f"s{s}_t{t}",
                "title": f"Task {t} of stage {s}",
                "description": "Generated for the DataLoader test.",
                "points": 5 + t,
                "estimated_minutes": 3 + t,
                "required": t != tasks_per_stage - 1,
                "help": [
                    {"title": f"Guide {s}.{t}", "url": f"https://docs.example/{s}/{t}"},
                    {"title": "Video", "url": f"https://videos.example/{s}/{t}", "kind": "video"},
                ],
            }
            if t > 0:
                task["depends_on"] = [f"s{s}_t{t - 1}"]
            if t == 2:
                task["success_criterion"] = {"event": f"event_{s}", "count": 2}
            tasks.append(task)
        stage: dict[str, Any] = {
            "key": f"stage_{s}",
            "name": f"Stage {s}",
            "description": f"Generated stage {s}.",
            "reward": {
                "points": 10 * (s + 1),
                "badge": {"key": f"badge-{s}", "name": f"Badge {s}", "icon": "star"},
            },
            "tasks": tasks,
        }
        if s > 0:
            stage["unlock"] = {
                "previous_stages_complete": True,
                "min_points": 5 * s,
                "tasks_completed": [f"s{s - 1}_t0"],
            }
        out.append(stage)
    return {"key": "generated", "name": "Generated", "stages": out}


async def _big_tenant() -> tuple[uuid.UUID, Customer]:
    """A fresh organization whose default template has 10 stages and 50 tasks."""
    slug = f"big-{uuid.uuid4().hex[:10]}"
    async with transaction():
        org, admin = await create_organization(
            name=f"Big {slug}", slug=slug, admin_email=f"admin@{slug}.test", admin_name="Admin"
        )
        viewer = Viewer(subject=admin.email, organization_id=org.id, role=Role.ADMIN)
        await install_template(
            viewer, definition=generated_template(10, 5), make_default=True, created_by="test"
        )
    async with transaction():
        customer = await create_customer(
            viewer, NewCustomer(email=f"big@{slug}.test", name="Big Customer")
        )
    return org.id, customer


async def _measure(
    gql: InProcessGraphQL, org_id: uuid.UUID, customer_id: uuid.UUID
) -> tuple[list[str], dict[str, Any]]:
    csm = await operator_subject(org_id, Role.CSM)
    token = token_for(gql.settings, subject=csm, organization_id=org_id, role=Role.CSM)
    async with gql.client() as client:
        # The token's check against the database is cached per process: warm it first, so
        # only the statements of the query itself are counted.
        await gql.execute("{ viewer { role } }", token=token, client=client)
        with counting_statements() as statements:
            body = await gql.execute(
                FULL_WORKFLOW, {"customerId": str(customer_id)}, token=token, client=client
            )
    assert "errors" not in body, body.get("errors")
    return list(statements), body["data"]["workflow"]


def _customer_token(gql: InProcessGraphQL, org_id: uuid.UUID, customer: Customer) -> str:
    return token_for(
        gql.settings,
        organization_id=org_id,
        role=Role.CUSTOMER,
        customer_id=customer.id,
        subject=customer.email,
    )


async def test_workflow_query_statement_count_does_not_grow(tenant: Tenant) -> None:
    gql = InProcessGraphQL(make_settings())
    small_customer = await tenant.customer()
    big_org, big_customer = await _big_tenant()
    subject = await operator_subject(big_org, Role.ADMIN)
    admin = token_for(gql.settings, subject=subject, organization_id=big_org, role=Role.ADMIN)
    for key in ("s0_t0", "s0_t1"):  # some progress, so statuses differ
        body = await gql.execute(
            COMPLETE, {"customerId": str(big_customer.id), "key": key}, token=admin
        )
        assert "errors" not in body, body

    small_sql, small = await _measure(gql, tenant.id, small_customer.id)
    big_sql, big = await _measure(gql, big_org, big_customer.id)

    assert (len(small["stages"]), sum(len(s["tasks"]) for s in small["stages"])) == (4, 13)
    assert (len(big["stages"]), sum(len(s["tasks"]) for s in big["stages"])) == (10, 50)
    assert big["template"]["stageCount"] == 10 and big["template"]["taskCount"] == 50
    assert big["points"] == 5 + 6
    assert big["customer"]["id"] == str(big_customer.id)
    assert all(t["helpResources"] for s in big["stages"] for t in s["tasks"])

    print(
        f"\nSQL statements for a full workflow query: default 4 stages/13 tasks = "
        f"{len(small_sql)}, generated 10 stages/50 tasks = {len(big_sql)}"
    )
    for sql in big_sql:
        print("  ", " ".join(sql.split())[:160])
    assert len(small_sql) == len(big_sql), (small_sql, big_sql)
    # the customer's workflow with its stages and tasks (one statement), the customer's
    # fields, the template
    assert len(big_sql) == 3, big_sql


async def test_customer_view_of_the_same_query_costs_the_same(tenant: Tenant) -> None:
    gql = InProcessGraphQL(make_settings())
    customer = await tenant.customer()
    operator_sql, _ = await _measure(gql, tenant.id, customer.id)
    token = _customer_token(gql, tenant.id, customer)
    async with gql.client() as client:
        await gql.execute("{ viewer { role } }", token=token, client=client)  # token check
        with counting_statements() as statements:
            body = await gql.execute(
                FULL_WORKFLOW, {"customerId": str(customer.id)}, token=token, client=client
            )
    assert "errors" not in body, body.get("errors")
    assert len(statements) == len(operator_sql)


async def test_update_task_costs_five_statements_or_fewer(tenant: Tenant) -> None:
    gql = InProcessGraphQL(make_settings())
    customer = await tenant.customer()
    token = token_for(
        gql.settings, subject=tenant.csm.subject, organization_id=tenant.id, role=Role.CSM
    )
    variables = {"customerId": str(customer.id), "key": "verify_email"}
    async with gql.client() as client:
        # The token check against the database is cached per process: warm it first.
        await gql.execute("{ viewer { role } }", {}, token=token, client=client)
        with counting_statements() as statements:
            body = await gql.execute(COMPLETE, variables, token=token, client=client)
    assert body["data"]["updateTask"]["task"]["status"] == "COMPLETED", body
    print(f"\nSQL statements for updateTask COMPLETE: {len(statements)}")
    for sql in statements:
        print("  ", " ".join(sql.split())[:160])
    # one statement reads the workflow (with the customer's sign-up), its stages and tasks;
    # one writes workflow, tasks and stages, the stream sequence, the outbox rows and the
    # notify, if the workflow's version is still the one read; each is its own transaction
    # (no BEGIN or COMMIT). Under contention the locked path takes 3 plus BEGIN and COMMIT.
    assert len(statements) <= 2, statements
    assert not any("CASE" in sql for sql in statements), statements
    # the next step on a workflow this process wrote last is computed from what it kept of
    # that write: the guarded write alone
    async with gql.client() as client:
        with counting_statements() as statements:
            body = await gql.execute(
                COMPLETE, {**variables, "key": "watch_intro"}, token=token, client=client
            )
    assert body["data"]["updateTask"]["task"]["status"] == "COMPLETED", body
    assert len(statements) == 1, statements


async def test_update_task_by_task_id_costs_the_same_two_statements(tenant: Tenant) -> None:
    """The checklist page moves tasks by id: the read finds the task's workflow itself."""
    gql = InProcessGraphQL(make_settings())
    customer = await tenant.customer()
    token = _customer_token(gql, tenant.id, customer)
    async with gql.client() as client:
        await gql.execute("{ viewer { role } }", {}, token=token, client=client)  # token check
        listed = await gql.execute(
            "{ workflow { stages { tasks { id key } } } }", token=token, client=client
        )
        (task_id,) = [
            t["id"]
            for s in listed["data"]["workflow"]["stages"]
            for t in s["tasks"]
            if t["key"] == "verify_email"
        ]
        with counting_statements() as statements:
            body = await gql.execute(
                "mutation($id: ID) { updateTask(input: {taskId: $id, action: COMPLETE}) "
                "{ task { key status } } }",
                {"id": task_id},
                token=token,
                client=client,
            )
    assert body["data"]["updateTask"]["task"] == {"key": "verify_email", "status": "COMPLETED"}
    assert len(statements) <= 2, statements


async def test_the_checklist_query_is_one_statement_with_or_without_stages(
    tenant: Tenant,
) -> None:
    gql = InProcessGraphQL(make_settings())
    customer = await tenant.customer()
    token = _customer_token(gql, tenant.id, customer)
    checklist = """query { workflow { progress ...Current stages { key tasks { key status } } } }
    fragment Current on Workflow { currentStage { key } }"""
    async with gql.client() as client:
        await gql.execute("{ viewer { role } }", token=token, client=client)  # token check
        counted = []
        for query in ("{ workflow { progress points } }", checklist):
            with counting_statements() as statements:
                body = await gql.execute(query, token=token, client=client)
            assert "errors" not in body, body
            counted.append(len(statements))
    assert counted == [1, 1], counted
    workflow = body["data"]["workflow"]
    assert workflow["currentStage"]["key"] == workflow["stages"][0]["key"]
    assert sum(len(s["tasks"]) for s in workflow["stages"]) == 13


async def test_update_task_answers_the_workflows_stages_from_what_it_wrote(
    tenant: Tenant,
) -> None:
    """The stages, tasks and current stage an `updateTask` answer selects come from the
    records the step wrote (handed to the loaders when a field first asks), not read again:
    the statement counts stay those of the task alone, and the answer shows the move."""
    gql = InProcessGraphQL(make_settings())
    customer = await tenant.customer()
    token = token_for(
        gql.settings, subject=tenant.csm.subject, organization_id=tenant.id, role=Role.CSM
    )
    document = """
    mutation Complete($customerId: ID!, $key: String!) {
      updateTask(input: {customerId: $customerId, taskKey: $key, action: COMPLETE}) {
        task { status }
        workflow { version currentStage { key } stages { key status tasks { key status } } }
      }
    }
    """
    variables = {"customerId": str(customer.id), "key": "verify_email"}
    async with gql.client() as client:
        await gql.execute("{ viewer { role } }", {}, token=token, client=client)
        with counting_statements() as first:
            body = await gql.execute(document, variables, token=token, client=client)
        with counting_statements() as second:
            again = await gql.execute(
                document, {**variables, "key": "watch_intro"}, token=token, client=client
            )
    assert len(first) <= 2 and len(second) == 1, (first, second)
    for answer, done in ((body, {"verify_email"}), (again, {"verify_email", "watch_intro"})):
        workflow = answer["data"]["updateTask"]["workflow"]
        assert workflow["currentStage"] == {"key": "welcome"}, answer
        welcome = workflow["stages"][0]
        assert welcome["key"] == "welcome" and welcome["status"] == "IN_PROGRESS"
        assert {t["key"] for t in welcome["tasks"] if t["status"] == "COMPLETED"} == done
