"""`retried_transaction`: a unit the database rolls back to settle a conflict runs again in a
new transaction, up to 3 times in all, each retry logged with its SQLSTATE; other errors and
the last conflict are raised; `retried_or_skipped` skips a unit that keeps conflicting."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import asyncpg
import pytest
from tortoise.connection import get_connection

from app.db import retried_or_skipped, retried_transaction


def conflicts(*errors: Exception) -> tuple[Callable[[], Awaitable[int]], list[int]]:
    """A unit raising `errors` in turn, then returning how many times it ran; and the ids of
    the transactions it ran in."""
    ran: list[int] = []

    async def unit() -> int:
        rows = await get_connection("default").execute_query_dict("SELECT txid_current() AS tx")
        assert rows[0]["tx"] not in ran, "each attempt in a new transaction"
        ran.append(rows[0]["tx"])
        if len(ran) <= len(errors):
            raise errors[len(ran) - 1]
        return len(ran)

    return unit, ran


async def test_a_unit_rolled_back_runs_again_and_each_retry_is_logged(
    db: str, caplog: pytest.LogCaptureFixture
) -> None:
    unit, ran = conflicts(
        asyncpg.exceptions.DeadlockDetectedError("deadlock detected"),
        asyncpg.exceptions.SerializationError("could not serialize access"),
    )
    assert await retried_transaction(unit, what="the unit") == 3
    assert len(ran) == 3
    assert "the unit rolled back by the database (40P01); attempt 2 of 3" in caplog.text
    assert "the unit rolled back by the database (40001); attempt 3 of 3" in caplog.text


async def test_the_last_conflict_and_any_other_error_are_raised(
    db: str, caplog: pytest.LogCaptureFixture
) -> None:
    deadlock = asyncpg.exceptions.DeadlockDetectedError("deadlock detected")
    unit, ran = conflicts(deadlock, deadlock, deadlock, deadlock)
    with pytest.raises(asyncpg.exceptions.DeadlockDetectedError):
        await retried_transaction(unit, what="the unit")
    assert len(ran) == 3 and caplog.text.count("rolled back by the database") == 2

    unit, ran = conflicts(ValueError("wrong"))
    with pytest.raises(ValueError, match="wrong"):
        await retried_transaction(unit, what="the unit")
    assert len(ran) == 1

    unit, ran = conflicts(deadlock, deadlock, deadlock)
    assert await retried_or_skipped(unit, what="the unit", attempts=2) is None
    assert len(ran) == 2 and "the unit rolled back 2 times" in caplog.text
