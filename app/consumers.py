"""The outbox consumers every worker runs, one entry per domain that reacts to events.

Each entry is an `app.events.consumers.Consumer`; its handler runs inside the consumer's
transaction and sees each committed event exactly once.
"""

from __future__ import annotations

from app.analytics import consumer as analytics
from app.automation import engine as automation
from app.events.consumers import Consumer
from app.health.spine import CONSUMER as HEALTH
from app.milestones.spine import CONSUMER as MILESTONES
from app.onboarding.autocomplete import CONSUMER as SUCCESS_CRITERIA

CONSUMERS: list[Consumer] = [
    Consumer(
        analytics.NAME,
        analytics.handle,
        types=analytics.TYPES,
        batch_size=500,
        linger_seconds=analytics.LINGER_SECONDS,
    ),
    Consumer("automation", automation.handle),
    HEALTH,
    SUCCESS_CRITERIA,
    MILESTONES,
]
