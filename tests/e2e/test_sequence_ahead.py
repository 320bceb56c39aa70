"""`afterSequence` ahead of a customer's latest event is refused with SEQUENCE_AHEAD, not silent."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from app.accounts.models import Role
from app.accounts.tokens import token_for
from app.settings import Settings
from tests.support.factories import Tenant, last_sequence
from tests.support.gqlws import GqlWsClient
from tests.support.stack import ApiProcess, single_api

pytestmark = pytest.mark.e2e

SECRET = "sequence-ahead-test-secret-long-enough-for-hs256"
PROGRESS = """subscription($cid: ID, $after: Int) {
  workflowProgress(customerId: $cid, afterSequence: $after) { sequence type replayed }
}"""
COMPLETE = """mutation($cid: ID) {
  updateTask(input: {customerId: $cid, taskKey: "verify_email", action: COMPLETE}) { task { key } }
}"""


@pytest.fixture(scope="module")
def api(database_url: str) -> Iterator[ApiProcess]:
    with single_api("sequence-ahead", database_url=database_url, secret_key=SECRET) as server:
        yield server


async def test_after_sequence_ahead_is_refused_with_the_latest(
    api: ApiProcess, tenant: Tenant
) -> None:
    customer = await tenant.customer()
    latest = await last_sequence(customer.id)
    assert latest >= 1
    admin = token_for(
        Settings(secret_key=SECRET),
        subject=tenant.admin.subject,
        organization_id=tenant.id,
        role=Role.ADMIN,
    )
    cid = str(customer.id)
    async with await GqlWsClient.connect(api.ws_url, token=admin) as client:
        await client.subscribe("ahead", PROGRESS, {"cid": cid, "after": latest + 5})
        message = await client.receive("ahead", within=10)
        errors = message["payload"] if message["type"] == "error" else message["payload"]["errors"]
        assert [e["extensions"]["code"] for e in errors] == ["SEQUENCE_AHEAD"], message
        assert errors[0]["extensions"]["latest"] == latest
        assert f"afterSequence {latest + 5}" in errors[0]["message"]

        # At the latest sequence itself: nothing to replay, and live events arrive.
        await client.subscribe("at", PROGRESS, {"cid": cid, "after": latest})
        async with httpx.AsyncClient(timeout=30) as http:
            done = await http.post(
                api.graphql_url,
                json={"query": COMPLETE, "variables": {"cid": cid}},
                headers={"Authorization": f"Bearer {admin}"},
            )
        assert "errors" not in done.json(), done.json()
        event = (await client.next_data("at", within=15))["workflowProgress"]
        assert event == {"sequence": latest + 1, "type": "task.completed", "replayed": False}
