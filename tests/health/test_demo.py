"""The demo's health through the real computation: every level, trends, varied risks."""

from __future__ import annotations

import uuid
from collections import Counter

from app.demo import seed_demo
from app.health import service
from app.health.models import HealthScore, HealthSnapshot
from tests.support.factories import Tenant  # noqa: F401  (fixtures)


async def test_demo_customers_show_every_level_trends_and_varied_risks(db: str) -> None:
    demo = await seed_demo(customers=300, slug=f"demo-{uuid.uuid4().hex[:10]}")
    org = demo.organization.id
    scores = await HealthScore.filter(organization_id=org)
    assert len(scores) == 300
    levels = Counter(s.level for s in scores)
    assert set(levels) == {"HEALTHY", "AT_RISK", "CRITICAL"}, levels
    assert min(levels.values()) >= 15, levels
    # a history per customer: eight past days and today
    days = (
        await HealthSnapshot.filter(organization_id=org, kind="DAILY")
        .distinct()
        .values_list("day", flat=True)
    )
    assert len(set(days)) == 9
    viewer = demo.csm
    from app.accounts.viewer import Viewer

    csm = Viewer(subject=viewer.email, organization_id=org, role=viewer.role)
    views = await service.views_for(csm, [s.customer_id for s in scores])  # type: ignore[attr-defined]
    deltas = await service.deltas(csm, list(views), 7)
    assert sum(1 for d in deltas.values() if d >= 5) >= 5, "rising customers"
    assert sum(1 for d in deltas.values() if d <= -5) >= 5, "falling customers"
    kinds = Counter(r.component for v in views.values() for r in v.risks)
    assert {"engagement", "adoption", "onboarding", "support", "billing"} <= set(kinds), kinds
    messages = {r.message.split(" ")[0] for v in views.values() for r in v.risks}
    assert len(messages) >= 6, messages
