"""The analytics consumer of the event spine: every customer event refreshes its rollups."""

from __future__ import annotations

from collections.abc import Sequence

from app.analytics import maintain
from app.events.channels import Published
from app.kit.clock import utcnow

NAME = "analytics-rollups"
TYPES = ("customer.", "workflow.", "task.", "stage.", "points.", "badge.")
LINGER_SECONDS = 0.5
"""Events committed within half a second are handled as one batch: a busy customer's moves
become one refresh, and a batch's fixed statements are shared by more events. Dashboards
recompute at most once a second, so nobody sees the difference."""


async def handle(events: Sequence[Published]) -> None:
    """Refresh the contribution of every customer these events touch (caller's transaction)."""
    await maintain.refresh(
        {e.customer_id for e in events if e.customer_id is not None}, now=utcnow()
    )
