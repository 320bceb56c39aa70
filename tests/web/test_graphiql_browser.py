"""GraphiQL in real Chromium with the internet unreachable: it renders, queries, subscribes."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import quote, urlencode

import httpx
import pytest

from app.accounts.models import Role
from app.accounts.tokens import token_for
from app.settings import Settings
from tests.support.browser import OFFLINE_ARGS, chromium_path
from tests.support.factories import Tenant
from tests.support.stack import ApiProcess, single_api

pytestmark = pytest.mark.e2e

SECRET = "graphiql-browser-test-secret-long-enough-for-hs256"
ME = "query Me { viewer { role organization { slug } } }"
PROGRESS = """subscription Live($customerId: ID) {
  workflowProgress(customerId: $customerId) { sequence type taskKey progress }
}"""
COMPLETE = """mutation($customerId: ID, $key: String!) {
  updateTask(input: {customerId: $customerId, taskKey: $key, action: COMPLETE}) { task { key } }
}"""


@pytest.fixture(scope="module")
def api(database_url: str) -> Iterator[ApiProcess]:
    with single_api("graphiql", database_url=database_url, secret_key=SECRET) as server:
        yield server


@pytest.fixture
async def browser() -> AsyncIterator[object]:
    executable = chromium_path()
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=executable, args=list(OFFLINE_ARGS))
        try:
            yield chromium
        finally:
            await chromium.close()


def test_internet_is_unreachable_for_the_browser() -> None:
    """The offline flags are what the GraphiQL test relies on: prove they cut the network."""
    assert any(a.startswith("--host-resolver-rules=MAP * ~NOTFOUND") for a in OFFLINE_ARGS)
    assert "--proxy-server=http://127.0.0.1:9" in OFFLINE_ARGS


async def test_graphiql_works_offline(
    api: ApiProcess, browser: object, tenant: Tenant, tmp_path: Path
) -> None:
    from playwright.async_api import Browser, Page

    assert isinstance(browser, Browser)
    customer = await tenant.customer()
    settings = Settings(secret_key=SECRET)
    admin = token_for(
        settings, subject=tenant.admin.subject, organization_id=tenant.id, role=Role.ADMIN
    )
    headers = json.dumps({"Authorization": f"Bearer {admin}"})
    variables = json.dumps({"customerId": str(customer.id)})

    probe = await browser.new_page()  # the internet is really gone for this browser
    with pytest.raises(Exception, match="ERR_"):
        await probe.goto("https://unpkg.com/react@18.2.0/umd/react.production.min.js")
    await probe.close()

    page: Page = await browser.new_page()
    requests: list[str] = []
    problems: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.on("pageerror", lambda e: problems.append(f"pageerror: {e}"))
    page.on(
        "console", lambda m: problems.append(f"console: {m.text}") if m.type == "error" else None
    )

    async def open_ide(query: str) -> None:
        params = urlencode(
            {"q": query, "variables": variables, "headers": headers}, quote_via=quote
        )
        await page.goto(f"{api.graphql_url}?{params}", wait_until="load")
        await page.locator(".graphiql-query-editor .CodeMirror").wait_for(timeout=30_000)

    async def response_text() -> str:
        return await page.locator(".graphiql-response").inner_text()

    async def run_and_wait(expected: str) -> str:
        await page.locator(".graphiql-execute-button").click()
        return await wait_for_response(expected)

    async def wait_for_response(expected: str) -> str:
        text = ""
        for _ in range(150):
            text = await response_text()
            if expected in text:
                return text
            await page.wait_for_timeout(200)
        await page.screenshot(path=str(tmp_path / "graphiql-failed.png"))
        raise AssertionError(f"{expected!r} never appeared; response pane:\n{text}")

    await open_ide(ME)
    assert await page.title() == "Liftoff GraphiQL"
    assert await page.locator(".graphiql-container .graphiql-editors").count() == 1
    shown = await run_and_wait(tenant.org.slug)
    assert '"role": "ADMIN"' in shown
    await page.screenshot(path=str(tmp_path / "graphiql-query.png"))

    await open_ide(PROGRESS)
    await page.locator(".graphiql-execute-button").click()
    await page.wait_for_timeout(1500)  # the websocket is open and subscribed
    variables_of_move = {"customerId": str(customer.id), "key": "verify_email"}
    async with httpx.AsyncClient(timeout=30) as http:
        moved = await http.post(
            api.graphql_url,
            json={"query": COMPLETE, "variables": variables_of_move},
            headers={"Authorization": f"Bearer {admin}"},
        )
    done = moved.json()
    assert "errors" not in done, done
    shown = await wait_for_response('"workflowProgress"')
    assert '"type": "task.' in shown or '"type": "points.awarded"' in shown, shown
    await page.screenshot(path=str(tmp_path / "graphiql-subscription.png"))

    assert problems == [], problems
    local = (api.http_url, api.ws_url, "data:")
    foreign = [u for u in requests if not u.startswith(local)]
    assert foreign == [], foreign
    assert any("/static/vendor/graphiql@" in u for u in requests), requests
