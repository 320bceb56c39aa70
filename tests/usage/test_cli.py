"""`liftoff api-key create|list|revoke`, run as real commands, and the key used on the API."""

from __future__ import annotations

from app.accounts import apikeys
from app.accounts.models import ApiKey, Organization
from tests.accounts.test_cli import liftoff
from tests.graphql.client import error_codes
from tests.support.factories import Tenant
from tests.usage.test_ingest_api import events_for, ingest_with_key


async def test_api_key_commands(db: str, tenant: Tenant) -> None:
    customer = await tenant.customer()
    org = tenant.org.slug
    made = await liftoff(db, "api-key", "create", "--org", org, "--name", "warehouse sync")
    assert made.returncode == 0, made.stderr
    secret = made.stdout.strip().splitlines()[-1]
    assert secret.startswith("lk_")
    row = await ApiKey.get(organization_id=tenant.id, name="warehouse sync")
    body = await ingest_with_key(secret, events_for(3, customer_id=customer.id))
    assert body["data"]["ingestEvents"]["accepted"] == 3
    listed = await liftoff(db, "api-key", "list", "--org", org)
    assert listed.returncode == 0 and row.prefix in listed.stdout and secret not in listed.stdout
    assert "warehouse sync" in listed.stdout and "active" in listed.stdout
    revoked = await liftoff(db, "api-key", "revoke", "--org", org, str(row.id))
    assert revoked.returncode == 0, revoked.stderr
    apikeys.CACHE.entries.clear()  # this process's verdicts lapse after LIFTOFF_AUTH_CACHE_SECONDS
    body = await ingest_with_key(secret, events_for(1, customer_id=customer.id))
    assert error_codes(body) == ["UNAUTHENTICATED"]


async def test_event_retention_command(db: str, tenant: Tenant) -> None:
    org = tenant.org.slug
    done = await liftoff(db, "event-retention", "--org", org, "--days", "30")
    assert done.returncode == 0 and "30 days" in done.stdout, done.stderr
    assert (await Organization.get(id=tenant.id)).event_retention_days == 30
    refused = await liftoff(db, "event-retention", "--org", org, "--days", "0")
    assert refused.returncode == 2 and "VALIDATION_FAILED" in refused.stderr
    reset = await liftoff(db, "event-retention", "--org", org)
    assert reset.returncode == 0 and "the default (400 days)" in reset.stdout, reset.stdout
    assert (await Organization.get(id=tenant.id)).event_retention_days is None
