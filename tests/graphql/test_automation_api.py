"""The automation API over the real GraphQL view: CRUD with versions and reasons, roles,
dry runs with rendered content, backtests, runs, statistics, notifications, CSM tasks."""

from __future__ import annotations

from typing import Any

from app.accounts.models import Role
from app.automation.models import AutomationRuleVersion
from app.onboarding.states import TaskAction
from tests.automation.support import Drain, add_rule, definition
from tests.graphql.client import error_codes, gql, token, tokens_of
from tests.support.factories import Tenant

RULE = """id key name enabled version priority cooldownSeconds maxRuns trigger conditions actions
  goal versions { version definition }"""
CREATE = "mutation($d: JSON!, $on: Boolean!) { createAutomationRule(definition: $d, enabled: $on)"
CREATE += f" {{ {RULE} }} }}"
NUDGE: dict[str, Any] = {
    "name": "Setup nudge",
    "priority": 3,
    "cooldownSeconds": 86400,
    "trigger": {"type": "no_progress", "days": 3, "stage": "setup"},
    "conditions": {"all": [{"fact": "customer.userType", "op": "eq", "value": "enterprise"}]},
    "actions": [
        {
            "type": "send_email",
            "subject": "Stuck in {{ workflow.currentStage }}?",
            "text": "Hi {{ customer.name }}, here is the setup guide.",
            "html": "<b>{{ customer.name }}</b>",
        },
        {
            "type": "if",
            "conditions": {"fact": "customer.properties.plan", "op": "eq", "value": "enterprise"},
            "then": [{"type": "create_task", "title": "Call {{ customer.name }}", "dueInDays": 1}],
        },
    ],
}


async def test_rule_crud_versions_and_roles(tenant: Tenant) -> None:
    customer = await tenant.customer()
    tokens = tokens_of(tenant, customer)
    admin, csm = tokens[Role.ADMIN], tokens[Role.CSM]
    body = await gql(CREATE, {"d": NUDGE, "on": False}, token=csm)
    assert error_codes(body) == ["FORBIDDEN"]
    created = (await gql(CREATE, {"d": NUDGE, "on": False}, token=admin))["data"][
        "createAutomationRule"
    ]
    assert created["version"] == 1 and created["enabled"] is False
    assert created["trigger"] == {"type": "no_progress", "days": 3.0, "stage": "setup"}
    assert created["cooldownSeconds"] == 86400 and created["priority"] == 3
    rid = created["id"]

    changed = {**NUDGE, "name": "Setup nudge v2", "maxRuns": 2}
    body = await gql(
        f"mutation($id: ID!, $d: JSON!) {{ updateAutomationRule(id: $id, definition: $d) "
        f"{{ {RULE} }} }}",
        {"id": rid, "d": changed},
        token=admin,
    )
    updated = body["data"]["updateAutomationRule"]
    assert updated["version"] == 2 and updated["maxRuns"] == 2
    assert [v["definition"]["name"] for v in updated["versions"]] == [
        "Setup nudge",
        "Setup nudge v2",
    ]
    assert await AutomationRuleVersion.filter(rule_id=rid).count() == 2
    from app.audit.models import AuditEntry

    audited = await AuditEntry.filter(
        organization_id=tenant.id, action__startswith="automation_"
    ).values_list("action", flat=True)
    assert audited == ["automation_rule.create", "automation_rule.update"]  # defaults are not

    on = await gql(
        "mutation($id: ID!) { setAutomationRuleEnabled(id: $id, enabled: true) { enabled } }",
        {"id": rid},
        token=admin,
    )
    assert on == {"data": {"setAutomationRuleEnabled": {"enabled": True}}}
    listed = await gql("{ automationRules(enabled: true) { id name } }", token=csm)  # CSMs read
    assert [r["id"] for r in listed["data"]["automationRules"]] == [rid]
    defaults = await gql("{ automationRules(enabled: false) { key } }", token=admin)
    assert sorted(r["key"] for r in defaults["data"]["automationRules"]) == [
        "at_risk_call",
        "crm_onboarding_completed",
        "reengagement_email",
        "stage_celebration",
        "stalled_nudge",
        "welcome_email",
    ]
    gone = await gql(
        "mutation($id: ID!) { deleteAutomationRule(id: $id) { deleted enabled } }",
        {"id": rid},
        token=admin,
    )
    assert gone == {"data": {"deleteAutomationRule": {"deleted": True, "enabled": False}}}
    again = await gql("query($id: ID!) { automationRule(id: $id) { id } }", {"id": rid}, token=csm)
    assert error_codes(again) == ["NOT_FOUND"]


async def test_an_invalid_rule_is_refused_with_every_reason(tenant: Tenant) -> None:
    bad = {
        "name": "",
        "trigger": {"type": "event", "event": "task.completed"},
        "conditions": {"fact": "workflow.progress", "op": "gt", "value": "high"},
        "actions": [{"type": "send_email", "subject": "{{ oops", "text": "x"}],
    }
    body = await gql(CREATE, {"d": bad, "on": True}, token=token(tenant.id, Role.ADMIN))
    assert error_codes(body) == ["INVALID_RULE"]
    reasons = body["errors"][0]["extensions"]["reasons"]
    assert any(r.startswith("name:") for r in reasons)
    assert "conditions.value: gt compares with a number or an ISO date" in reasons


async def test_dry_run_renders_what_would_be_sent_without_doing_it(tenant: Tenant) -> None:
    customer = await tenant.customer(name="Ada", user_type="enterprise")
    rule = await add_rule(tenant, NUDGE, enabled=False)
    body = await gql(
        "query($id: ID, $cid: ID!) { testAutomationRule(ruleId: $id, customerId: $cid) { "
        "triggerMatched conditionsHeld wouldFire skipReason "
        "conditions { path kind held fact seen reason } actions { path type content error } "
        "branches } }",
        {"id": str(rule.id), "cid": str(customer.id)},
        token=token(tenant.id, Role.CSM),
    )
    result = body["data"]["testAutomationRule"]
    assert result["triggerMatched"] and result["conditionsHeld"] and result["wouldFire"]
    assert result["conditions"][1] == {
        "path": "$.all[0]",
        "kind": "fact",
        "held": True,
        "fact": "customer.userType",
        "seen": "enterprise",
        "reason": "equal",
    }
    [email] = result["actions"]  # the branch does not hold: no plan property
    assert email["content"] == {
        "to": customer.email,
        "subject": "Stuck in welcome?",
        "text": "Hi Ada, here is the setup guide.",
        "html": "<b>Ada</b>",
    }
    assert result["branches"]["1"][0]["seen"] is None
    from app.automation.models import AutomationRun
    from app.deliveries.models import Delivery

    assert await AutomationRun.filter(rule_id=rule.id).count() == 0
    assert await Delivery.filter(organization_id=tenant.id).count() == 0

    webhook = definition(
        "stage.completed",
        {
            "type": "webhook",
            "event": "crm.stage",
            "data": {"who": "{{ customer.email }}", "stage": "{{ event.payload.stage }}"},
        },
    )
    body = await gql(
        "query($d: JSON, $cid: ID!) { testAutomationRule(definition: $d, customerId: $cid, "
        'event: {type: "stage.completed", payload: {stage: "setup"}}) { wouldFire '
        "actions { content } } }",
        {"d": webhook, "cid": str(customer.id)},
        token=token(tenant.id, Role.ADMIN),
    )
    [hook] = body["data"]["testAutomationRule"]["actions"]
    assert hook["content"]["body"]["data"] == {"who": customer.email, "stage": "setup"}
    assert hook["content"]["endpoints"] == []


async def test_backtest_compares_goal_rates_with_and_without_the_rule(tenant: Tenant) -> None:
    hit, miss, other = [await tenant.customer() for _ in range(3)]
    await tenant.act(hit.id, "verify_email", TaskAction.COMPLETE)
    await tenant.act(hit.id, "complete_profile", TaskAction.COMPLETE)
    await tenant.act(miss.id, "verify_email", TaskAction.COMPLETE)
    await tenant.act(other.id, "watch_intro", TaskAction.COMPLETE)
    candidate = definition(
        "task.completed",
        {"type": "notify", "title": "Next: your profile"},
        conditions={"fact": "event.payload.task", "op": "eq", "value": "verify_email"},
        goal={
            "event": "task.completed",
            "withinDays": 7,
            "conditions": {"fact": "event.payload.task", "op": "eq", "value": "complete_profile"},
        },
    )
    body = await gql(
        'query($d: JSON!) { backtestAutomationRule(definition: $d, from: "2000-01-01T00:00:00Z")'
        " { customersSeen triggered triggeredGoalMet triggeredGoalRate notTriggered "
        "notTriggeredGoalMet goal notes } }",
        {"d": candidate},
        token=token(tenant.id, Role.ADMIN),
    )
    result = body["data"]["backtestAutomationRule"]
    assert result["customersSeen"] == 3
    assert (result["triggered"], result["triggeredGoalMet"]) == (2, 1)
    assert result["triggeredGoalRate"] == 0.5
    assert (result["notTriggered"], result["notTriggeredGoalMet"]) == (1, 0)
    assert result["goal"] == "task.completed within 7 days"


async def test_runs_stats_and_goal_completion(tenant: Tenant) -> None:
    good = await add_rule(
        tenant,
        definition(
            "task.completed",
            {"type": "notify", "title": "Well done"},
            name="Cheer",
            goal={"event": "stage.completed", "withinDays": 3},
        ),
    )
    bad = await add_rule(
        tenant,
        definition(
            "task.completed",
            {"type": "notify", "title": "Telling the CRM"},
            {"type": "webhook", "event": "crm.task"},
            name="CRM",
        ),
    )
    customer = await tenant.customer()
    drain = Drain(tenant)
    for key in ("verify_email", "complete_profile", "watch_intro"):
        await tenant.act(customer.id, key, TaskAction.COMPLETE)
        await drain()  # complete_profile completes the welcome stage: the goal of "Cheer"
    admin = token(tenant.id, Role.ADMIN)
    body = await gql(
        "{ automationStats(period: LAST_24_HOURS) { ruleId name runs succeeded failed "
        "successRate p50Ms goalMet goalCompletionRate failuresByReason { reason count } "
        "actions { path type total done failed successRate } } }",
        token=admin,
    )
    stats = {s["name"]: s for s in body["data"]["automationStats"]}
    cheer, crm = stats["Cheer"], stats["CRM"]
    assert (cheer["runs"], cheer["succeeded"], cheer["successRate"]) == (3, 3, 1.0)
    # The stage completed after the first two runs; the third waits for its window to end.
    assert cheer["goalMet"] == 2 and cheer["goalCompletionRate"] == 1.0
    assert (crm["runs"], crm["failed"], crm["successRate"]) == (3, 3, 0.0)
    assert crm["failuresByReason"] == [{"reason": "no_endpoint", "count": 3}]
    assert [(a["path"], a["type"], a["successRate"]) for a in crm["actions"]] == [
        ("0", "notify", 1.0),
        ("1", "webhook", 0.0),
    ]
    assert stats["Welcome email on signup"]["runs"] == 0  # defaults are listed, disabled

    page = await gql(
        "query($id: ID) { ruleExecutions(ruleId: $id, status: FAILED, first: 2) { totalCount "
        "pageInfo { hasNextPage endCursor } edges { node { status ruleVersion triggerType "
        "actions { path type status error errorKind attempts } } } } }",
        {"id": str(bad.id)},
        token=token(tenant.id, Role.CSM),
    )
    runs = page["data"]["ruleExecutions"]
    assert runs["totalCount"] == 3 and runs["pageInfo"]["hasNextPage"]
    node = runs["edges"][0]["node"]
    assert node["triggerType"] == "task.completed" and node["ruleVersion"] == 1
    assert node["actions"][1]["errorKind"] == "no_endpoint"
    assert "no enabled webhook endpoint" in node["actions"][1]["error"]
    assert good.id != bad.id


async def test_notifications_and_csm_tasks(tenant: Tenant) -> None:
    csm_email = tenant.csm.subject  # an operator that exists, so its token is accepted
    await add_rule(
        tenant,
        definition(
            "customer.created",
            {"type": "notify", "title": "Welcome {{ customer.name }}"},
            {
                "type": "notify",
                "to": f"{{{{ '{csm_email}' }}}}",
                "title": "New: {{ customer.name }}",
            },
            {"type": "create_task", "title": "Intro call", "assignee": csm_email},
        ),
    )
    customer = await tenant.customer(name="Ada")
    await Drain(tenant)()
    mine = token(tenant.id, Role.CUSTOMER, customer_id=customer.id, subject=customer.email)
    csm = token(tenant.id, Role.CSM, subject=csm_email)
    got = await gql("{ notifications(unreadOnly: true) { id title read } }", token=mine)
    [note] = got["data"]["notifications"]
    assert note["title"] == "Welcome Ada" and note["read"] is False
    ops = await gql("{ notifications { title aboutCustomerId } }", token=csm)
    assert ops["data"]["notifications"] == [
        {"title": "New: Ada", "aboutCustomerId": str(customer.id)}
    ]
    marked = await gql("mutation { markNotificationsRead }", token=mine)
    assert marked == {"data": {"markNotificationsRead": 1}}
    assert (await gql("{ notifications(unreadOnly: true) { id } }", token=mine))["data"] == {
        "notifications": []
    }
    tasks = await gql(
        f'{{ csmTasks(assignee: "{csm_email}", status: OPEN) {{ id title customerId }} }}',
        token=csm,
    )
    [task] = tasks["data"]["csmTasks"]
    assert task["title"] == "Intro call" and task["customerId"] == str(customer.id)
    done = await gql(
        "mutation($id: ID!) { completeCsmTask(id: $id) { status completedBy } }",
        {"id": task["id"]},
        token=csm,
    )
    assert done == {"data": {"completeCsmTask": {"status": "DONE", "completedBy": csm_email}}}
    assert error_codes(await gql("{ csmTasks { id } }", token=mine)) == ["FORBIDDEN"]
