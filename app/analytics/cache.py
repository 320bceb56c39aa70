"""Reports computed lately in this process, kept until their organization's rollups change.

A dashboard asks the same `analytics` filter again and again while the rollups under it
change far less often. Each process keeps the Report it computed per (organization, filter),
sections and all, and answers from it while nothing changed: the consumer NOTIFYs on commit
whenever it changes an organization's rollups (so does a rebuild, per chunk), and the
process's LISTEN connection bumps that organization's generation, which retires its
reports. Nothing is kept while that connection is down (a missed NOTIFY would leave a stale
report), and a report is never older than `max_age` seconds (its "now": activity windows,
the forecast's ages). A busy organization, whose rollups change between two requests,
recomputes every time, which is the cost `bench.analytics` reports as uncached.
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from app.analytics.query import Scope
from app.analytics.service import Report

DEFAULT_MAX_AGE = 30.0
SIZE = 256
"""Reports kept per process, least recently used dropped first."""


@dataclass(frozen=True)
class _Entry:
    generation: int
    made: float
    report: Report


class ReportCache:
    """Reports per scope, valid while their organization's generation is unchanged."""

    def __init__(self, *, max_age: float = DEFAULT_MAX_AGE, size: int = SIZE) -> None:
        self.max_age = max_age
        self.size = size
        self.listening = False
        self.hits = self.misses = 0
        self._generations: dict[uuid.UUID, int] = {}
        self._entries: OrderedDict[Scope, _Entry] = OrderedDict()

    def changed(self, organization_id: uuid.UUID) -> None:
        """The organization's rollups changed (a NOTIFY arrived): its reports are stale."""
        self._generations[organization_id] = self._generations.get(organization_id, 0) + 1

    def connected(self, listening: bool) -> None:
        """The LISTEN connection came up or went down; either way forget every report."""
        self.listening = listening
        self._entries.clear()

    def report(self, scope: Scope, make: Callable[[], Report]) -> Report:
        """The kept report of `scope` if still valid, else a new one from `make` (kept when
        changes are being heard)."""
        generation = self._generations.get(scope.organization_id, 0)
        now = time.monotonic()
        found = self._entries.get(scope)
        if (
            found is not None
            and self.listening
            and found.generation == generation
            and now - found.made < self.max_age
        ):
            self._entries.move_to_end(scope)
            self.hits += 1
            return found.report
        self.misses += 1
        report = make()
        if self.listening and self.max_age > 0:
            self._entries[scope] = _Entry(generation, now, report)
            self._entries.move_to_end(scope)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
        else:
            self._entries.pop(scope, None)
        return report
