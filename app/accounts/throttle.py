"""Pure decisions on failed sign-ins: when the next attempt may come, when to lock."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True, slots=True)
class Policy:
    """Failures within `window` count; from `slow_after` on, each failure doubles the wait
    before the next attempt; at `lock_after` the key is locked for `lock_for`."""

    slow_after: int
    lock_after: int
    lock_for: timedelta
    window: timedelta = timedelta(minutes=15)
    first_delay: timedelta = timedelta(seconds=1)


ACCOUNT = Policy(slow_after=3, lock_after=8, lock_for=timedelta(minutes=15))
"""Per email address: slowed after 3 failures, locked for 15 minutes at 8."""

ADDRESS = Policy(slow_after=10, lock_after=30, lock_for=timedelta(minutes=15))
"""Per client address (several people may share one): more lenient."""


@dataclass(frozen=True, slots=True)
class Counter:
    """What is stored per key."""

    failures: int = 0
    last_failure_at: datetime | None = None
    locked_until: datetime | None = None


def recent_failures(counter: Counter, *, now: datetime, policy: Policy) -> int:
    """Failures that still count: none once the last one is older than the window."""
    last = counter.last_failure_at
    if last is None or now - last > policy.window:
        return 0
    return counter.failures


def wait_before_attempt(counter: Counter, *, now: datetime, policy: Policy) -> timedelta:
    """How long the caller must wait before the next attempt is even checked (zero: go)."""
    if counter.locked_until is not None and now < counter.locked_until:
        return counter.locked_until - now
    failures = recent_failures(counter, now=now, policy=policy)
    if failures < policy.slow_after or counter.last_failure_at is None:
        return timedelta(0)
    delay: timedelta = policy.first_delay * 2 ** (failures - policy.slow_after)
    return max(timedelta(0), counter.last_failure_at + delay - now)


def after_failure(counter: Counter, *, now: datetime, policy: Policy) -> Counter:
    """The counter once one more failure is recorded (locked when it reaches the limit)."""
    failures = recent_failures(counter, now=now, policy=policy) + 1
    locked = now + policy.lock_for if failures >= policy.lock_after else None
    return Counter(failures=0 if locked else failures, last_failure_at=now, locked_until=locked)


def attempts_left(counter: Counter, *, now: datetime, policy: Policy) -> int:
    """Failures still allowed before the lock."""
    return max(0, policy.lock_after - recent_failures(counter, now=now, policy=policy))


def in_words(wait: timedelta) -> str:
    """`4 seconds`, `1 minute`, `14 minutes`."""
    seconds = max(1, round(wait.total_seconds()))
    if seconds < 60:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    minutes = -(-seconds // 60)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"
