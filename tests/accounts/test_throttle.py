"""The pure sign-in throttle: slowed after a few failures, then locked, forgotten after a while."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.accounts.throttle import (
    ACCOUNT,
    Counter,
    Policy,
    after_failure,
    attempts_left,
    in_words,
    wait_before_attempt,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
P = Policy(slow_after=2, lock_after=4, lock_for=timedelta(minutes=15))


def fail(times: int, *, every: timedelta = timedelta(seconds=0)) -> Counter:
    counter, now = Counter(), T0
    for _ in range(times):
        counter = after_failure(counter, now=now, policy=P)
        now += every
    return counter


def test_first_failures_cost_nothing() -> None:
    assert wait_before_attempt(fail(1), now=T0, policy=P) == timedelta(0)
    assert attempts_left(fail(1), now=T0, policy=P) == 3


def test_from_slow_after_on_each_failure_doubles_the_wait() -> None:
    assert wait_before_attempt(fail(2), now=T0, policy=P) == timedelta(seconds=1)
    assert wait_before_attempt(fail(3), now=T0, policy=P) == timedelta(seconds=2)
    later = T0 + timedelta(seconds=2)
    assert wait_before_attempt(fail(3), now=later, policy=P) == timedelta(0)


def test_reaching_lock_after_locks_for_lock_for() -> None:
    locked = fail(4)
    assert locked.locked_until == T0 + timedelta(minutes=15)
    assert wait_before_attempt(locked, now=T0 + timedelta(minutes=5), policy=P) == timedelta(
        minutes=10
    )
    assert wait_before_attempt(locked, now=T0 + timedelta(minutes=15), policy=P) == timedelta(0)
    # After the lock the count starts again.
    assert attempts_left(locked, now=T0 + timedelta(minutes=16), policy=P) == 4


def test_failures_older_than_the_window_are_forgotten() -> None:
    counter = fail(3)
    later = T0 + P.window + timedelta(seconds=1)
    assert wait_before_attempt(counter, now=later, policy=P) == timedelta(0)
    assert after_failure(counter, now=later, policy=P).failures == 1


def test_the_account_policy_slows_before_it_locks() -> None:
    assert 1 < ACCOUNT.slow_after < ACCOUNT.lock_after


def test_waits_in_words() -> None:
    assert in_words(timedelta(seconds=1)) == "1 second"
    assert in_words(timedelta(seconds=4.4)) == "4 seconds"
    assert in_words(timedelta(seconds=61)) == "2 minutes"
    assert in_words(timedelta(minutes=1)) == "1 minute"
