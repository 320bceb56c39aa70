"""`liftoff operator create|set-password` and `liftoff login-link`, run as real commands."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid

from app.accounts.credentials import OperatorPassword
from app.accounts.models import Operator
from tests.accounts.test_signin import LOGIN, REDEEM, call, new_address
from tests.graphql.client import error_codes
from tests.support.factories import Tenant

LIFTOFF = os.path.join(os.path.dirname(sys.executable), "liftoff")


async def liftoff(db: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": db, "LIFTOFF_PUBLIC_URL": "http://pages.test:8123"}
    return await asyncio.to_thread(
        subprocess.run, [LIFTOFF, *args], env=env, capture_output=True, text=True, timeout=60
    )


async def test_operator_commands_and_a_login_link(db: str, tenant: Tenant) -> None:
    email = f"ops-{uuid.uuid4().hex[:6]}@example.com"
    org = tenant.org.slug
    made = await liftoff(
        db, "operator", "create", "--org", org, "--email", email, "--role", "csm",
        "--password", "first password 1",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert (await Operator.get(email=email)).role == "CSM"
    reset = await liftoff(
        db, "operator", "set-password", "--org", org, "--email", email,
        "--password", "second password 2",
    )  # fmt: skip
    assert reset.returncode == 0, reset.stderr
    operator = await Operator.get(email=email)
    assert (await OperatorPassword.get(operator_id=operator.id)).hash.startswith("$argon2id$")
    old = await call(LOGIN, {"e": email, "p": "first password 1"}, address=new_address())
    assert error_codes(old) == ["UNAUTHENTICATED"]
    new = await call(LOGIN, {"e": email, "p": "second password 2"}, address=new_address())
    assert new["data"]["login"]["role"] == "CSM"

    link = await liftoff(db, "login-link", "--org", org, "--email", email)
    assert link.returncode == 0, link.stderr
    url = link.stdout.strip()
    assert url.startswith("http://pages.test:8123/signin#link="), url
    body = await call(REDEEM, {"s": url.split("#link=", 1)[1]}, address=new_address())
    assert body["data"]["redeemSignInLink"]["subject"] == email

    short = await liftoff(
        db, "operator", "set-password", "--org", org, "--email", email, "--password", "short"
    )
    assert short.returncode == 2 and "at least 12 characters" in short.stderr
    nobody = await liftoff(db, "login-link", "--org", org, "--email", "nobody@example.com")
    assert nobody.returncode == 2 and "NOT_FOUND" in nobody.stderr
