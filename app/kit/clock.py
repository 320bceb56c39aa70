"""The one place that reads the wall clock, so tests and the demo can pass their own."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """Current time, timezone-aware UTC."""
    return datetime.now(UTC)
