"""Tokens against a real `liftoff serve`: a deleted operator's token is refused over HTTP and
its open websocket is closed with 4403; so are revoked and expired ones."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta

import asyncpg
import httpx
import pytest

from app.accounts.models import Role
from app.accounts.tokens import token_for
from app.settings import Settings
from tests.support.gqlws import GqlWsClient
from tests.support.processes import LiftoffServer, liftoff_env, run_liftoff

pytestmark = pytest.mark.e2e

SECRET = "e2e-tokens-secret-key-that-is-long-enough-for-hs256"
SETTINGS = Settings(secret_key=SECRET)
ACTIVITY = "subscription { activity { type } }"
CREATE_CSM = """mutation($e: String!) { createOperator(input: {email: $e, name: "C", role: CSM})
  { id } }"""


@pytest.fixture(scope="module")
def env(database_url: str) -> dict[str, str]:
    overrides = {
        "DATABASE_URL": database_url,
        "LIFTOFF_SECRET_KEY": SECRET,
        "LIFTOFF_AUTH_CACHE_SECONDS": "0.5",
    }
    return liftoff_env(overrides)


@pytest.fixture(scope="module")
def server(
    env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiftoffServer]:
    log = tmp_path_factory.mktemp("tokens") / "liftoff-serve.log"
    with LiftoffServer(env=env, log_path=log, args=["--no-migrate"]) as running:
        yield running


@pytest.fixture(scope="module")
def org(env: dict[str, str]) -> tuple[str, str]:
    slug = f"tok-{uuid.uuid4().hex[:8]}"
    done = run_liftoff(
        "create-org", "--name", "T", "--slug", slug, "--admin-email", f"a@{slug}.test", env=env
    )
    return slug, done.stdout.strip().splitlines()[-1].strip()


def post(server: LiftoffServer, query: str, token: str, **variables: str) -> dict[str, object]:
    response = httpx.post(
        server.graphql_url,
        json={"query": query, "variables": variables},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    body: dict[str, object] = response.json()
    return body


def new_csm(server: LiftoffServer, env: dict[str, str], org: tuple[str, str]) -> tuple[str, str]:
    slug, admin = org
    email = f"csm-{uuid.uuid4().hex[:6]}@{slug}.test"
    assert "errors" not in post(server, CREATE_CSM, admin, e=email)
    done = run_liftoff("token", "--org", slug, "--role", "CSM", "--subject", email, env=env)
    return email, done.stdout.strip()


async def live_socket(server: LiftoffServer, token: str) -> GqlWsClient:
    client = await GqlWsClient.connect(server.graphql_url.replace("http", "ws"), token=token)
    await client.subscribe("1", ACTIVITY)
    await client.ping()
    assert not client.closed
    return client


async def test_a_deleted_operator_is_refused_and_its_socket_closed(
    server: LiftoffServer, env: dict[str, str], org: tuple[str, str], database_url: str
) -> None:
    email, csm = new_csm(server, env, org)
    assert "errors" not in post(server, "{ viewer { role } }", csm)
    socket = await live_socket(server, csm)
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("DELETE FROM operator WHERE email = $1", email)
    finally:
        await conn.close()
    code, reason = await socket.wait_closed(within=10)
    assert code == 4403 and "not an active operator" in reason, (code, reason)
    body = post(server, "{ viewer { role } }", csm)
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"  # type: ignore[index]
    await socket.close()


async def test_a_revoked_token_is_refused_and_its_socket_closed(
    server: LiftoffServer, env: dict[str, str], org: tuple[str, str]
) -> None:
    email, csm = new_csm(server, env, org)
    socket = await live_socket(server, csm)
    done = run_liftoff("token", "revoke", "--org", org[0], "--subject", email, env=env)
    assert "version 1" in done.stdout
    code, reason = await socket.wait_closed(within=10)
    assert code == 4403 and "revoked" in reason, (code, reason)
    assert "revoked" in str(post(server, "{ viewer { role } }", csm))
    fresh = run_liftoff("token", "--org", org[0], "--role", "CSM", "--subject", email, env=env)
    assert "errors" not in post(server, "{ viewer { role } }", fresh.stdout.strip())
    await socket.close()


async def test_an_expiring_token_closes_its_socket(
    server: LiftoffServer, env: dict[str, str], org: tuple[str, str]
) -> None:
    email, _ = new_csm(server, env, org)
    slug = org[0]
    conn_org = post(server, "{ viewer { organization { id } } }", org[1])
    org_id = uuid.UUID(conn_org["data"]["viewer"]["organization"]["id"])  # type: ignore[index]
    short = token_for(
        SETTINGS, subject=email, organization_id=org_id, role=Role.CSM, ttl=timedelta(seconds=3)
    )
    socket = await live_socket(server, short)
    code, reason = await socket.wait_closed(within=10)
    assert code == 4403 and "expired" in reason, (code, reason, slug)
    await socket.close()


def test_the_cli_refuses_a_token_for_no_operator(env: dict[str, str], org: tuple[str, str]) -> None:
    done = run_liftoff(
        "token",
        "--org",
        org[0],
        "--role",
        "ADMIN",
        "--subject",
        "ghost@nowhere",
        env=env,
        check=False,
    )
    assert done.returncode != 0
    assert "not an active operator" in done.stdout + done.stderr
