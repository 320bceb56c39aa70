"""`liftoff serve` as a real process over real HTTP, with the CLI minting its tokens."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.support.processes import LiftoffServer, liftoff_env, run_liftoff

pytestmark = pytest.mark.e2e

SECRET = "e2e-serve-secret-key-that-is-long-enough-for-hs256"


@dataclass(frozen=True)
class Org:
    slug: str
    admin_token: str


@pytest.fixture(scope="module")
def env(database_url: str) -> dict[str, str]:
    """The session database (already migrated) and a fixed signing key."""
    return liftoff_env({"DATABASE_URL": database_url, "LIFTOFF_SECRET_KEY": SECRET})


@pytest.fixture(scope="module")
def server(
    env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiftoffServer]:
    log = tmp_path_factory.mktemp("serve") / "liftoff-serve.log"
    with LiftoffServer(env=env, log_path=log, args=["--no-migrate"]) as running:
        yield running
    assert running.stopped_gracefully, running.output()[-4000:]


@pytest.fixture(scope="module")
def org(env: dict[str, str]) -> Org:
    slug = f"e2e-{uuid.uuid4().hex[:8]}"
    done = run_liftoff(
        "create-org",
        "--name",
        "E2E Corp",
        "--slug",
        slug,
        "--admin-email",
        f"admin@{slug}.test",
        env=env,
    )
    assert f"Organization {slug!r} created" in done.stdout, done.stdout
    token = done.stdout.strip().splitlines()[-1].strip()
    assert token.count(".") == 2, done.stdout
    return Org(slug=slug, admin_token=token)


def gql(
    server: LiftoffServer,
    query: str,
    variables: dict[str, Any] | None = None,
    *,
    token: str | None = None,
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = httpx.post(
        server.graphql_url,
        json={"query": query, "variables": variables or {}},
        headers=headers,
        timeout=30,
    )
    assert response.status_code == 200, (response.text, server.output()[-3000:])
    body: dict[str, Any] = response.json()
    return body


def ok(body: dict[str, Any]) -> dict[str, Any]:
    assert "errors" not in body, body["errors"]
    data: dict[str, Any] = body["data"]
    return data


def code_of(body: dict[str, Any]) -> str:
    (error,) = body["errors"]
    assert error["message"], error
    return str(error["extensions"]["code"])


CREATE_CUSTOMER = """
mutation($input: CreateCustomerInput!) {
  createCustomer(input: $input) { id email name workflow { id status points } }
}
"""

WORKFLOW = """
query($customerId: ID) {
  workflow(customerId: $customerId) {
    id status points progress estimatedMinutesRemaining
    badges { key }
    currentStage { key }
    stages { key status tasks { key status } }
  }
}
"""

UPDATE_TASK = """
mutation($customerId: ID, $key: String!, $action: TaskAction!) {
  updateTask(input: {customerId: $customerId, taskKey: $key, action: $action}) {
    task { key status }
    workflow { points badges { key } currentStage { key } }
    unlockedTasks { key }
    unlockedStages { key }
    completedStages { key }
    pointsAwarded
    badgesAwarded { key name }
    celebrations { kind title stageKey }
    workflowCompleted
  }
}
"""


def test_health_and_graphiql(server: LiftoffServer) -> None:
    health = httpx.get(f"{server.url}/healthz", timeout=10)
    assert health.status_code == 200 and "server" not in health.headers  # no banner
    assert health.json() == {"status": "ok", "broker": "memory", "relay_lag_seconds": 0.0}
    ready = httpx.get(f"{server.url}/readyz", timeout=10)
    assert ready.status_code == 200 and ready.json()["problems"] == [], ready.json()

    page = httpx.get(server.graphql_url, headers={"Accept": "text/html"}, timeout=10)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "graphiql" in page.text.lower()
    # Every asset comes from this server, with a long cache lifetime.
    assets = re.findall(r'(?:src|href)="(/static/vendor/[^"]+)"', page.text)
    assert len(assets) >= 4 and "unpkg" not in page.text, page.text
    for path in assets:
        asset = httpx.get(f"{server.url}{path}", timeout=10)
        assert asset.status_code == 200, path
        assert "immutable" in asset.headers["cache-control"], asset.headers


def test_requests_without_a_token_are_refused_with_a_code(server: LiftoffServer) -> None:
    body = gql(server, "{ viewer { subject } }")
    assert code_of(body) == "UNAUTHENTICATED"
    body = gql(server, "{ viewer { subject } }", token="not-a-jwt")
    assert code_of(body) == "UNAUTHENTICATED"


def test_onboarding_over_http(server: LiftoffServer, org: Org, env: dict[str, str]) -> None:
    admin = org.admin_token
    viewer = ok(gql(server, "{ viewer { role organization { slug } } }", token=admin))
    assert viewer["viewer"] == {"role": "ADMIN", "organization": {"slug": org.slug}}

    created = ok(
        gql(
            server,
            CREATE_CUSTOMER,
            {"input": {"email": f"ada@{org.slug}.test", "name": "Ada Lovelace"}},
            token=admin,
        )
    )["createCustomer"]
    cid = created["id"]
    assert created["workflow"]["status"] == "ACTIVE" and created["workflow"]["points"] == 0

    workflow = ok(gql(server, WORKFLOW, {"customerId": cid}, token=admin))["workflow"]
    assert [s["key"] for s in workflow["stages"]] == ["welcome", "setup", "features", "mastery"]
    assert workflow["currentStage"] == {"key": "welcome"}
    assert workflow["progress"] == 0 and workflow["estimatedMinutesRemaining"] > 0
    welcome = {t["key"]: t["status"] for t in workflow["stages"][0]["tasks"]}
    assert welcome["verify_email"] == "AVAILABLE" and welcome["complete_profile"] == "LOCKED"

    # Tasks that cannot be done yet: the refusal says why, with a code.
    body = gql(
        server,
        UPDATE_TASK,
        {"customerId": cid, "key": "complete_profile", "action": "COMPLETE"},
        token=admin,
    )
    assert code_of(body) == "DEPENDENCY_NOT_MET"
    body = gql(
        server,
        UPDATE_TASK,
        {"customerId": cid, "key": "create_first_project", "action": "COMPLETE"},
        token=admin,
    )
    assert code_of(body) == "TASK_LOCKED"

    step = ok(
        gql(
            server,
            UPDATE_TASK,
            {"customerId": cid, "key": "verify_email", "action": "COMPLETE"},
            token=admin,
        )
    )["updateTask"]
    assert step["task"] == {"key": "verify_email", "status": "COMPLETED"}
    assert step["pointsAwarded"] == 10
    assert [t["key"] for t in step["unlockedTasks"]] == ["complete_profile"]
    assert step["completedStages"] == [] and step["celebrations"] == []

    step = ok(
        gql(
            server,
            UPDATE_TASK,
            {"customerId": cid, "key": "complete_profile", "action": "COMPLETE"},
            token=admin,
        )
    )["updateTask"]
    assert step["pointsAwarded"] == 15 + 50
    assert step["workflow"]["points"] == 75
    assert [s["key"] for s in step["completedStages"]] == ["welcome"]
    assert [s["key"] for s in step["unlockedStages"]] == ["setup"]
    assert {"connect_data_source", "invite_team"} <= {t["key"] for t in step["unlockedTasks"]}
    assert step["badgesAwarded"] == [{"key": "first-steps", "name": "First Steps"}]
    assert step["workflow"]["badges"] == [{"key": "first-steps"}]
    assert step["workflow"]["currentStage"] == {"key": "setup"}
    assert [c["kind"] for c in step["celebrations"]] == ["STAGE_COMPLETED", "BADGE_EARNED"]
    assert step["workflowCompleted"] is False

    # Refusals: the same move twice, and skipping a required task.
    again = gql(
        server,
        UPDATE_TASK,
        {"customerId": cid, "key": "complete_profile", "action": "COMPLETE"},
        token=admin,
    )
    assert again["data"] is None and code_of(again) == "INVALID_TRANSITION"
    skip = gql(
        server,
        UPDATE_TASK,
        {"customerId": cid, "key": "invite_team", "action": "SKIP"},
        token=admin,
    )
    assert code_of(skip) == "TASK_REQUIRED"

    # A CSM token minted by the CLI (for a CSM that exists) reads the same state.
    email = f"csm@{org.slug}.test"
    run_liftoff(
        "operator",
        "create",
        "--org",
        org.slug,
        "--email",
        email,
        "--role",
        "CSM",
        "--password",
        "a-long-enough-password",
        env=env,
    )
    csm = run_liftoff("token", "--org", org.slug, "--role", "CSM", env=env).stdout.strip()
    seen = ok(gql(server, "{ viewer { role organization { slug } } }", token=csm))
    assert seen["viewer"] == {"role": "CSM", "organization": {"slug": org.slug}}
    after = ok(gql(server, WORKFLOW, {"customerId": cid}, token=csm))["workflow"]
    assert after["points"] == 75 and after["badges"] == [{"key": "first-steps"}]
    assert [s["status"] for s in after["stages"]] == ["COMPLETED", "UNLOCKED", "LOCKED", "LOCKED"]

    # The customer itself, with a token the CLI minted for it, omits customerId.
    mine = run_liftoff(
        "token", "--org", org.slug, "--role", "customer", "--customer", cid, env=env
    ).stdout.strip()
    own = ok(gql(server, WORKFLOW, token=mine))["workflow"]
    assert own["id"] == workflow["id"] and own["points"] == 75
    forbidden = gql(server, "{ customers(first: 5) { totalCount } }", token=mine)
    assert code_of(forbidden) == "FORBIDDEN"


def test_cli_token_for_an_unknown_org_fails(env: dict[str, str]) -> None:
    done = run_liftoff("token", "--org", "no-such-org", "--role", "CSM", env=env, check=False)
    assert done.returncode != 0
    assert "no-such-org" in done.stdout + done.stderr
