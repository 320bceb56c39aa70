"""Template versions: installing a new one leaves running workflows alone."""

from __future__ import annotations

import copy

import pytest

from app.db import transaction
from app.errors import InvalidTemplate
from app.onboarding import service
from app.onboarding.models import Workflow, WorkflowTemplate
from app.onboarding.templates import bundled_default, default_template, install_template
from tests.support.factories import Tenant


async def test_a_new_version_does_not_disturb_running_workflows(tenant: Tenant) -> None:
    before = await tenant.customer()
    v1 = await default_template(tenant.admin)
    changed = copy.deepcopy(bundled_default())
    changed["stages"][0]["tasks"].append(
        {"key": "say_hello", "title": "Say hello to your success manager", "points": 5}
    )
    async with transaction():
        v2 = await install_template(
            tenant.admin, definition=changed, make_default=True, created_by="t"
        )
    assert (v2.key, v2.version) == (v1.key, v1.version + 1)
    assert await default_template(tenant.admin) == v2
    after = await tenant.customer()

    old_keys = {t.key for t in await service.list_tasks(tenant.csm, str(before.id))}
    new_keys = {t.key for t in await service.list_tasks(tenant.csm, str(after.id))}
    assert "say_hello" not in old_keys and "say_hello" in new_keys
    assert (await Workflow.get(customer_id=before.id)).template_id == v1.id  # type: ignore[attr-defined]
    assert (await Workflow.get(customer_id=after.id)).template_id == v2.id  # type: ignore[attr-defined]


async def test_an_invalid_definition_is_refused_and_nothing_is_stored(tenant: Tenant) -> None:
    bad = copy.deepcopy(bundled_default())
    bad["stages"][0]["tasks"][0]["depends_on"] = ["complete_profile"]  # verify <-> profile cycle
    count = await WorkflowTemplate.filter(organization_id=tenant.id).count()
    with pytest.raises(InvalidTemplate) as refused:
        async with transaction():
            await install_template(tenant.admin, definition=bad, make_default=True, created_by="t")
    assert any("cycle" in r for r in refused.value.details["reasons"])
    assert await WorkflowTemplate.filter(organization_id=tenant.id).count() == count
