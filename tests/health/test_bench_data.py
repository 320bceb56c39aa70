"""The health bench's generated customers look like the engine's: each workflow's stored
figures are what the engine derives from its stages and tasks, and the set-based recompute
reads them as it reads any workflow."""

from __future__ import annotations

from app.db import transaction
from app.health import recompute
from app.health.models import HealthScore
from app.health.rules import Facts
from app.onboarding.models import Workflow, WorkflowTemplate
from app.onboarding.records import checklists, workflow_for_update
from app.onboarding.snapshot import build_state, derived
from app.onboarding.templates import definition_of
from bench.health_data import add_customers
from tests.support.factories import Tenant


async def test_generated_workflows_match_what_the_engine_derives(tenant: Tenant) -> None:
    template = await WorkflowTemplate.get(organization_id=tenant.id, is_default=True)
    definition = definition_of(template)
    await add_customers(tenant.id, template.id, definition, start=0, stop=120, days=40)
    workflows = await Workflow.filter(organization_id=tenant.id)
    assert len(workflows) == 120
    statuses = set()
    async with transaction():
        for wf in workflows:
            record = await workflow_for_update(tenant.id, wf.customer_id)  # type: ignore[attr-defined]
            assert record is not None
            (stages,) = await checklists(tenant.id, [record.id])
            state = build_state(record, stages).state
            progress, minutes, stage = derived(state)
            assert (wf.progress, wf.minutes_remaining, wf.current_stage_key) == (
                progress,
                minutes,
                stage,
            ), wf.id
            assert wf.status == state.status
            statuses.add((wf.status, wf.current_stage_key))
    assert len(statuses) >= 4  # completed ones and several stages

    scored, _ = await recompute.recompute_all(tenant.id)
    assert scored == 120
    by_customer = {
        w.customer_id: w  # type: ignore[attr-defined]
        for w in workflows
    }
    names = {s.key: s.name for s in definition.stages}
    levels = set()
    for row in await HealthScore.filter(organization_id=tenant.id):
        wf = by_customer[row.customer_id]  # type: ignore[attr-defined]
        done = wf.status == "COMPLETED"
        facts = Facts.from_json(row.facts)
        assert facts.progress == (1.0 if done else wf.progress / 100)
        assert facts.stage == (None if done else names[wf.current_stage_key])
        levels.add(row.level)
    assert levels == {"HEALTHY", "AT_RISK", "CRITICAL"}
