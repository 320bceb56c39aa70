"""The fresh-machine path: no DATABASE_URL, one command, an embedded PostgreSQL and demo data.

`liftoff serve --demo` starts the embedded PostgreSQL in `LIFTOFF_DATA_DIR`, migrates,
seeds the demo organization, prints tokens and serves. A second start on the same folder
finds the same data (and the same signing key) and does not seed again.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.processes import (
    LiftoffServer,
    liftoff_env,
    parse_demo_tokens,
    stop_embedded_postgres,
)

pytestmark = [pytest.mark.e2e, pytest.mark.embedded]

DEMO_CUSTOMERS = 60

COUNT = "{ customers(first: 5) { totalCount edges { node { id } } } }"
WHO = "{ viewer { role subject organization { id slug } customer { id } } }"
MY_WORKFLOW = "{ workflow { id points stages { key } } tasks { key status } }"
COMPLETE = """
mutation($key: String!) {
  updateTask(input: {taskKey: $key, action: COMPLETE}) { task { key status } workflow { points } }
}
"""


def gql(server: LiftoffServer, query: str, token: str, **variables: Any) -> dict[str, Any]:
    response = httpx.post(
        server.graphql_url,
        json={"query": query, "variables": variables},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert response.status_code == 200, (response.text, server.output()[-3000:])
    body: dict[str, Any] = response.json()
    assert "errors" not in body, body["errors"]
    data: dict[str, Any] = body["data"]
    return data


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    """An empty data folder; whatever PostgreSQL runs in it is stopped at the end."""
    folder = tmp_path / "liftoff-data"
    folder.mkdir()
    yield folder
    stop_embedded_postgres(folder / "pgdata")


def _postgres_stopped(pgdata: Path, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not (pgdata / "postmaster.pid").exists():
            return True
        time.sleep(0.2)
    return False


def _serve(data_dir: Path, log: Path, *args: str) -> LiftoffServer:
    env = liftoff_env({"LIFTOFF_DATA_DIR": str(data_dir)})
    assert "DATABASE_URL" not in env and "LIFTOFF_SECRET_KEY" not in env
    return LiftoffServer(env=env, log_path=log, args=list(args), startup_timeout=300)


def test_fresh_machine_demo_keeps_its_data_across_restarts(data_dir: Path) -> None:
    demo = ("--demo", "--demo-customers", str(DEMO_CUSTOMERS))
    with _serve(data_dir, data_dir / "first.log", *demo) as first:
        tokens = parse_demo_tokens(first.output())
        assert {"ADMIN", "CSM", "CUSTOMER", "customer_id"} <= set(tokens), first.output()[-3000:]

        listed = gql(first, COUNT, tokens["ADMIN"])["customers"]
        assert listed["totalCount"] == DEMO_CUSTOMERS
        assert len(listed["edges"]) == 5
        admin = gql(first, WHO, tokens["ADMIN"])["viewer"]
        assert admin["role"] == "ADMIN" and admin["organization"]["slug"] == "demo"

        me = gql(first, WHO, tokens["CUSTOMER"])["viewer"]
        assert me["customer"] == {"id": tokens["customer_id"]}
        found = gql(first, MY_WORKFLOW, tokens["CUSTOMER"])
        mine, tasks = found["workflow"], found["tasks"]
        assert [s["key"] for s in mine["stages"]] == ["welcome", "setup", "features", "mastery"]
        assert gql(first, WHO, tokens["CSM"])["viewer"]["role"] == "CSM"

        # A write of this run, to find again after the restart.
        available = [t["key"] for t in tasks if t["status"] in {"AVAILABLE", "IN_PROGRESS"}]
        assert available, tasks
        done = gql(first, COMPLETE, tokens["CUSTOMER"], key=available[0])["updateTask"]
        assert done["task"]["status"] == "COMPLETED"
        points = done["workflow"]["points"]
    assert first.stopped_gracefully, first.output()[-3000:]
    assert (data_dir / "secret.key").exists()
    # Restart PostgreSQL itself too, so the second run reads the data back from disk
    stop_embedded_postgres(data_dir / "pgdata")
    assert _postgres_stopped(data_dir / "pgdata", within=30)

    with _serve(data_dir, data_dir / "second.log", *demo) as second:
        again = parse_demo_tokens(second.output())
        assert {"ADMIN", "CUSTOMER"} <= set(again), second.output()[-3000:]

        # The tokens of the first run still work: same data, same signing key.
        assert gql(second, COUNT, tokens["ADMIN"])["customers"]["totalCount"] == DEMO_CUSTOMERS
        assert gql(second, COUNT, again["ADMIN"])["customers"]["totalCount"] == DEMO_CUSTOMERS
        org = gql(second, WHO, again["ADMIN"])["viewer"]["organization"]
        assert org == admin["organization"], "the demo organization was created again"

        found = gql(second, MY_WORKFLOW, tokens["CUSTOMER"])
        mine_again = found["workflow"]
        assert mine_again["id"] == mine["id"] and mine_again["points"] == points
        status = {t["key"]: t["status"] for t in found["tasks"]}
        assert status[available[0]] == "COMPLETED"
    assert second.stopped_gracefully, second.output()[-3000:]


def test_stopping_the_server_stops_its_embedded_postgres(data_dir: Path) -> None:
    pgdata = data_dir / "pgdata"
    with _serve(data_dir, data_dir / "serve.log") as server:
        assert (pgdata / "postmaster.pid").exists()
        health = httpx.get(f"{server.url}/healthz", timeout=10).json()
        assert (health["status"], health["broker"]) == ("ok", "memory")
    assert server.stopped_gracefully, server.output()[-3000:]
    assert _postgres_stopped(pgdata, within=10), (
        "liftoff serve exited on SIGTERM but left its embedded PostgreSQL running"
    )
