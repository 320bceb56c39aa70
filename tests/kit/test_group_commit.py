"""Group commit against a real PostgreSQL: concurrent statements share one round trip and
one transaction, each gets its own row; a failing member sends each back on its own with
its own outcome; nothing is written twice."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from tortoise.connection import get_connection
from tortoise.exceptions import IntegrityError

from app.db import transaction
from app.kit import group_commit
from app.kit.connections import connection_lost
from app.kit.group_commit import commit_alone

INSERT = "INSERT INTO {t} (k) VALUES ($1) RETURNING k, txid_current() AS tx"
BUMP = """WITH u AS (UPDATE {t} SET v = v + 1 WHERE k = $1 AND v = $2 RETURNING 1)
SELECT count(*) AS n, txid_current() AS tx FROM u"""


@pytest.fixture
async def table(db: str) -> AsyncIterator[str]:
    name = f"gc_{uuid.uuid4().hex[:10]}"
    connection = get_connection("default")
    await connection.execute_script(f"CREATE TABLE {name} (k int PRIMARY KEY, v int DEFAULT 0)")
    yield name
    await connection.execute_script(f"DROP TABLE {name}")


async def keys(table: str) -> list[int]:
    _, rows = await get_connection("default").execute_query(f"SELECT k FROM {table} ORDER BY k")
    return [r["k"] for r in rows]


async def test_concurrent_statements_share_one_transaction_and_get_their_own_row(
    table: str,
) -> None:
    before = dict(group_commit.sizes)
    rows = await asyncio.gather(*(commit_alone(INSERT.format(t=table), [k]) for k in range(10)))
    assert [r["k"] for r in rows] == list(range(10))  # one row each, in the callers' order
    # the first goes out at once; the nine that came while it was in flight go together
    assert rows[0]["tx"] != rows[1]["tx"]
    assert len({r["tx"] for r in rows[1:]}) == 1  # one transaction (one commit) for nine
    assert group_commit.sizes.get(9, 0) == before.get(9, 0) + 1
    assert await keys(table) == list(range(10))


async def test_a_lone_statement_goes_alone_and_batches_are_bounded(table: str) -> None:
    before = dict(group_commit.sizes)
    row = await commit_alone(INSERT.format(t=table), [1])
    assert row["k"] == 1
    assert group_commit.sizes.get(1, 0) == before.get(1, 0) + 1
    n = group_commit.LIMIT * 2 + 3
    rows = await asyncio.gather(*(commit_alone(INSERT.format(t=table), [k]) for k in range(2, n)))
    assert [r["k"] for r in rows] == list(range(2, n))
    assert len({r["tx"] for r in rows}) >= 3
    assert all(size <= group_commit.LIMIT for size in group_commit.sizes)
    assert await keys(table) == list(range(1, n))


async def test_a_later_statement_sees_an_earlier_ones_change(table: str) -> None:
    await commit_alone(INSERT.format(t=table), [7])
    # both computed from version 0: the first bumps it, the second's guard then fails (a
    # call on another key goes first, alone, so that these two go out together)
    _, first, second = await asyncio.gather(
        commit_alone(BUMP.format(t=table), [99, 0]),
        commit_alone(BUMP.format(t=table), [7, 0]),
        commit_alone(BUMP.format(t=table), [7, 0]),
    )
    assert first["tx"] == second["tx"]
    assert (first["n"], second["n"]) == (1, 0)
    _, rows = await get_connection("default").execute_query(f"SELECT v FROM {table}")
    assert [r["v"] for r in rows] == [1]


async def test_a_failing_member_runs_each_alone_with_its_own_outcome(table: str) -> None:
    await commit_alone(INSERT.format(t=table), [3])
    before = dict(group_commit.sizes)
    outcomes = await asyncio.gather(
        *(commit_alone(INSERT.format(t=table), [k]) for k in (1, 2, 3, 4, 5)),
        return_exceptions=True,
    )
    assert group_commit.sizes.get(4, 0) == before.get(4, 0) + 1  # 2-5 tried together first
    assert isinstance(outcomes[2], IntegrityError)  # key 3 exists: its own error
    good = [o for i, o in enumerate(outcomes) if i != 2]
    assert [o["k"] for o in good] == [1, 2, 4, 5]  # type: ignore[index]
    assert len({o["tx"] for o in good}) == 4  # each on its own
    assert await keys(table) == [1, 2, 3, 4, 5]  # nothing twice, nothing lost


async def test_a_lost_connection_is_not_run_again(table: str) -> None:
    """The batch may have committed when the connection went: running it again could apply
    it twice, so every caller gets the error."""
    kill = (
        f"WITH i AS (INSERT INTO {table} (k) VALUES ($1) RETURNING k)"
        " SELECT k, CASE WHEN $2 THEN pg_terminate_backend(pg_backend_pid()) END FROM i"
    )
    outcomes = await asyncio.gather(
        *(commit_alone(kill, [k, k == 3]) for k in (0, 1, 2, 3, 4)), return_exceptions=True
    )
    assert not isinstance(outcomes[0], BaseException)  # went alone, before the others came
    lost = outcomes[1:]
    assert all(isinstance(o, BaseException) and connection_lost(o) for o in lost), outcomes
    assert await keys(table) == [0]  # the batch was killed before its commit: not run again


async def test_a_committed_batch_without_a_row_each_is_not_run_again(table: str) -> None:
    """Whose row is whose is unknown when a batch answers fewer rows than calls, but it
    committed: every caller of the batch gets the error and nothing is applied twice."""
    some = f"INSERT INTO {table} (k) SELECT $1 WHERE $1 <> 2 RETURNING k"
    outcomes = await asyncio.gather(
        *(commit_alone(some, [k]) for k in (0, 1, 2, 3)), return_exceptions=True
    )
    assert not isinstance(outcomes[0], BaseException)  # went alone, before the others came
    assert all(isinstance(o, group_commit.RowsMismatch) for o in outcomes[1:]), outcomes
    assert await keys(table) == [0, 1, 3]  # committed once, not run again


async def test_inside_a_transaction_the_statement_runs_in_it(table: str) -> None:
    class RollBack(Exception):
        pass

    before = dict(group_commit.sizes)
    with pytest.raises(RollBack):
        async with transaction():
            row = await commit_alone(INSERT.format(t=table), [9])
            assert row["k"] == 9
            assert await keys(table) == [9]
            raise RollBack
    assert group_commit.sizes == before
    assert await keys(table) == []
