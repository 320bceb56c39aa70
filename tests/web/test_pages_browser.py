"""The dashboard and the checklist in real Chromium against a real `liftoff serve --demo`.

Screenshots of every page land in `.artifacts/screenshots/` (or `$LIFTOFF_TEST_ARTIFACTS`).
"""

from __future__ import annotations

import asyncio
import os
import re
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import create_database, drop_database
from tests.support.browser import OFFLINE_ARGS, chromium_path
from tests.support.processes import ROOT, LiftoffServer, liftoff_env, parse_demo_tokens, run_liftoff

pytestmark = pytest.mark.e2e

SECRET = "pages-browser-test-secret-long-enough-for-hs256"
PASSWORD = "a long demo password"
ARTIFACTS = Path(os.environ.get("LIFTOFF_TEST_ARTIFACTS", ROOT / ".artifacts")) / "screenshots"
LAPTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


@dataclass
class Demo:
    server: LiftoffServer
    env: dict[str, str]
    tokens: dict[str, str]
    links: dict[str, str]

    async def gql(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        role: str = "ADMIN",
        token: str | None = None,
    ) -> dict[str, Any]:
        async with httpx.AsyncClient(timeout=30) as http:
            response = await http.post(
                self.server.graphql_url,
                json={"query": query, "variables": variables or {}},
                headers={"Authorization": f"Bearer {token or self.tokens[role]}"},
            )
        body: dict[str, Any] = response.json()
        return body

    def link(self, email: str) -> str:
        done = run_liftoff(
            "login-link",
            "--org",
            "demo",
            "--email",
            email,
            "--port",
            str(self.server.port),
            env=self.env,
        )
        return done.stdout.strip()


@pytest.fixture(scope="module")
async def demo(
    database_server_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Demo]:
    url = await create_database(database_server_url)
    data = tmp_path_factory.mktemp("pages")
    env = liftoff_env(
        {"DATABASE_URL": url, "LIFTOFF_SECRET_KEY": SECRET, "LIFTOFF_DATA_DIR": str(data)}
    )
    server = LiftoffServer(
        env=env, log_path=data / "serve.log", args=["--demo", "--demo-customers", "120"]
    )
    await asyncio.to_thread(server.start)
    try:
        out = server.output()
        links = dict(re.findall(r"(Dashboard|Checklist) \([^)]*\): (\S+)", out))
        assert set(links) == {"Dashboard", "Checklist"}, out[-3000:]
        yield Demo(server=server, env=env, tokens=parse_demo_tokens(out), links=links)
    finally:
        await asyncio.to_thread(server.stop)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / "serve.log").write_text(server.output())
        await drop_database(database_server_url, url)


@dataclass
class Browser:
    chromium: Any
    problems: list[str] = field(default_factory=list)
    pages: list[Any] = field(default_factory=list)
    journal: list[str] = field(default_factory=list)
    operations: list[tuple[int, str]] = field(default_factory=list)

    async def page(self, viewport: dict[str, int] = LAPTOP) -> Any:
        context = await self.chromium.new_context(viewport=viewport)
        page = await context.new_page()
        self.pages.append(page)
        n = len(self.pages) - 1
        page.on("pageerror", lambda e: self.problems.append(f"pageerror: {e}"))
        page.on(
            "console",
            lambda m: self.problems.append(f"console: {m.text}") if m.type == "error" else None,
        )
        page.on("console", lambda m: self.note(n, f"console {m.type}: {m.text}"))
        page.on(
            "framenavigated",
            lambda f: self.note(n, f"at {f.url}") if f == page.main_frame else None,
        )
        page.on("request", lambda r: self.sent(n, r))
        page.on("response", lambda r: self.note(n, f"{r.status} {r.url}{operation(r.request)}"))
        page.on("requestfailed", lambda r: self.note(n, f"failed {r.url}: {r.failure}"))
        page.on("websocket", lambda ws: self.note(n, f"websocket {ws.url}"))
        return page

    def sent(self, page: int, request: Any) -> None:
        what = operation(request)
        self.note(page, f"{request.method} {request.url}{what}")
        named = re.match(r" (?:query|mutation|subscription) (\w+)", what)
        if named:
            self.operations.append((page, named[1]))

    def count(self, page: int, name: str) -> int:
        """How many requests for the GraphQL operation `name` a page has sent."""
        return self.operations.count((page, name))

    def note(self, page: int, what: str) -> None:
        """What a page did, kept to tell afterwards why a test waited in vain."""
        self.journal.append(f"{time.strftime('%H:%M:%S')} page {page}: {what}")


def operation(request: Any) -> str:
    """The GraphQL operation a request carries, if any: its first words."""
    try:
        body = request.post_data_json or {}
    except ValueError:
        return ""
    query = body.get("query", "") if isinstance(body, dict) else ""
    return f" {' '.join(query.split())[:60]}" if query else ""


@pytest.fixture
async def browser(request: pytest.FixtureRequest) -> AsyncIterator[Browser]:
    executable = chromium_path()
    from playwright.async_api import async_playwright

    name = request.node.name
    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=executable, args=list(OFFLINE_ARGS))
        found = Browser(chromium)
        try:
            yield found
        finally:
            for n, page in enumerate(found.pages):
                await shot(page, f"last-{name}-{n}")
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            (ARTIFACTS / f"{name}.log").write_text("\n".join(found.journal) + "\n")
            await chromium.close()
        assert found.problems == [], found.problems


async def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


async def signed_in_admin(demo: Demo, browser: Browser, viewport: dict[str, int] = LAPTOP) -> Any:
    page = await browser.page(viewport)
    await page.goto(demo.link("admin@demo.example"))
    await page.wait_for_url("**/dashboard")
    return page


async def test_a_link_signs_in_once_and_a_used_link_says_so(demo: Demo, browser: Browser) -> None:
    page = await browser.page()
    await page.goto(demo.links["Dashboard"])
    await page.wait_for_url("**/dashboard")
    await page.get_by_text("admin@demo.example · ADMIN").wait_for()
    again = await browser.page()
    await again.goto(demo.links["Dashboard"])
    alert = again.get_by_role("alert")
    await alert.wait_for()
    assert await alert.inner_text() == "This sign-in link has already been used; ask for a new one."
    assert again.url.endswith("/signin")
    await shot(again, "signin-used-link")


async def test_password_sign_in_and_a_wrong_password(demo: Demo, browser: Browser) -> None:
    run_liftoff(
        "operator",
        "set-password",
        "--org",
        "demo",
        "--email",
        "csm@demo.example",
        "--password",
        PASSWORD,
        env=demo.env,
    )
    page = await browser.page()
    await page.goto(f"{demo.server.url}/signin")
    await page.get_by_label("Email").fill("csm@demo.example")
    await page.get_by_label("Password").fill("not the password")
    await page.get_by_role("button", name="Sign in").click()
    alert = page.get_by_role("alert")
    await alert.wait_for()
    assert await alert.inner_text() == "Wrong email or password."
    await shot(page, "signin-wrong-password")
    await page.get_by_label("Password").fill(PASSWORD)
    await page.keyboard.press("Enter")
    await page.wait_for_url("**/dashboard")
    await page.get_by_text("csm@demo.example · CSM").wait_for()
    # CSMs see the table but not the admin-only CSV download.
    await page.get_by_role("link", name="Customers").click()
    await page.locator("#result-count").get_by_text("customers match").wait_for()
    assert await page.get_by_role("button", name="Download CSV of this view").count() == 0
    await page.get_by_role("button", name="Sign out").click()
    await page.wait_for_url("**/signin?signed-out")
    await page.goto(f"{demo.server.url}/dashboard")
    await page.wait_for_url("**/signin?next=*")


async def kpi(page: Any, name: str) -> str:
    text: str = await page.locator(f"[data-kpi={name}] .kpi-value").inner_text()
    return text


async def test_the_overview_shows_the_apis_numbers(demo: Demo, browser: Browser) -> None:
    page = await signed_in_admin(demo, browser)
    await (
        page.locator("[data-kpi=customers] .kpi-value")
        .filter(has_text=re.compile(r"\d"))
        .wait_for()
    )
    body = await demo.gql(
        "{ all: customers(first: 1) { totalCount } "
        "active: customers(first: 1, filter: {workflowStatus: ACTIVE}) { totalCount } "
        "done: customers(first: 1, filter: {workflowStatus: COMPLETED}) { totalCount } }"
    )
    counts = {k: v["totalCount"] for k, v in body["data"].items()}
    assert await kpi(page, "customers") == f"{counts['all']:,}"
    assert await kpi(page, "in-onboarding") == f"{counts['active']:,}"
    assert await kpi(page, "completed") == f"{counts['done']:,}"
    assert await kpi(page, "completion-rate") == f"{round(100 * counts['done'] / counts['all'])} %"
    analytics = await demo.gql(
        "{ analytics { overview { medianHoursToComplete } funnel { stages { name reached } } } }"
    )
    figures = analytics["data"]["analytics"]
    hours = figures["overview"]["medianHoursToComplete"]
    # the page formats like JavaScript: Math.round and toFixed round halves up
    days = Decimal(hours / 24).quantize(Decimal("0.1"), ROUND_HALF_UP)
    shown_hours = Decimal(hours).quantize(Decimal("1"), ROUND_HALF_UP)
    assert await kpi(page, "median-time") == (f"{shown_hours} h" if hours < 48 else f"{days} days")
    funnel = page.locator(".funnel li")
    await funnel.first.wait_for()
    shown = [
        (
            await li.locator(".funnel-name").inner_text(),
            await li.locator(".funnel-figures").inner_text(),
        )
        for li in await funnel.all()
    ]
    assert [name for name, _ in shown] == [s["name"] for s in figures["funnel"]["stages"]]
    for (_, text), stage in zip(shown, figures["funnel"]["stages"], strict=True):
        assert text.startswith(f"{stage['reached']:,} reached"), (text, stage)
    await shot(page, "dashboard-overview")
    phone = await signed_in_admin(demo, browser, PHONE)
    await (
        phone.locator("[data-kpi=customers] .kpi-value")
        .filter(has_text=re.compile(r"\d"))
        .wait_for()
    )
    await phone.locator(".funnel li").first.wait_for()
    await shot(phone, "dashboard-overview-phone")


async def test_filtering_the_customer_table(demo: Demo, browser: Browser) -> None:
    page = await signed_in_admin(demo, browser)
    await page.get_by_role("link", name="Customers").click()
    await page.locator("#result-count").get_by_text("customers match").wait_for()
    body = await demo.gql(
        '{ customers(first: 1, filter: {acquisitionChannel: "referral", workflowStatus: ACTIVE}) '
        "{ totalCount } }"
    )
    expected = body["data"]["customers"]["totalCount"]
    assert expected > 0
    await page.get_by_label("Channel").fill("referral")
    await page.get_by_label("Workflow").select_option("ACTIVE")
    count = page.locator("#result-count")
    await count.get_by_text(f"{expected} customers match").wait_for()
    channels = await page.locator("table.customers tbody tr td:nth-child(3)").all_inner_texts()
    assert channels and set(channels) == {"referral"}
    statuses = await page.locator(
        "table.customers tbody tr td:nth-child(4) .status"
    ).all_inner_texts()
    assert {s.split(" ")[0] for s in statuses} == {"ACTIVE"}
    await shot(page, "dashboard-customers")


async def test_the_customer_table_by_health(demo: Demo, browser: Browser) -> None:
    page = await signed_in_admin(demo, browser)
    await page.get_by_role("link", name="Customers").click()
    await page.locator("#result-count").get_by_text("customers match").wait_for()
    body = await demo.gql(
        "{ customers(first: 25, filter: {healthLevel: AT_RISK}, orderBy: HEALTH_ASC) "
        "{ totalCount edges { node { name health { score level } } } } }"
    )
    data = body["data"]["customers"]
    assert data["totalCount"] > 0, body
    scores = [e["node"]["health"]["score"] for e in data["edges"]]
    assert scores == sorted(scores) and {e["node"]["health"]["level"] for e in data["edges"]} == {
        "AT_RISK"
    }
    await page.locator("select[name=health]").select_option("AT_RISK")
    await page.locator("select[name=order]").select_option("HEALTH_ASC")
    count = page.locator("#result-count")
    await count.get_by_text(f"{data['totalCount']:,} customers match").wait_for()
    rows = page.locator("table.customers tbody tr")
    await rows.first.get_by_text(data["edges"][0]["node"]["name"]).wait_for()
    names = await page.locator("table.customers tbody tr td:nth-child(1) a").all_inner_texts()
    assert names == [e["node"]["name"] for e in data["edges"]]
    health = await page.locator("table.customers tbody tr td:nth-child(6)").all_inner_texts()
    assert [h.split()[0] for h in health] == [str(round(s)) for s in scores]
    assert all("at risk" in h.lower() for h in health), health
    await shot(page, "dashboard-customers-by-health")


async def new_customer(demo: Demo) -> tuple[str, str]:
    email = f"live-{uuid.uuid4().hex[:6]}@example.com"
    body = await demo.gql(
        "mutation($e: String!) { createCustomer(input: "
        '{email: $e, name: "Robin Live", company: "Live Co"}) { id } }',
        {"e": email},
    )
    customer_id: str = body["data"]["createCustomer"]["id"]
    await move(demo, customer_id, "verify_email")
    return customer_id, email


async def move(demo: Demo, customer_id: str, key: str, action: str = "COMPLETE") -> dict[str, Any]:
    body = await demo.gql(
        "mutation($c: ID, $k: String!, $a: TaskAction!) { updateTask(input: "
        "{customerId: $c, taskKey: $k, action: $a}) { task { status } celebrations { title } } }",
        {"c": customer_id, "k": key, "a": action},
    )
    assert "errors" not in body, body
    return body


async def test_a_task_done_through_the_api_shows_live_on_both_pages(
    demo: Demo, browser: Browser
) -> None:
    customer_id, _ = await new_customer(demo)
    dashboard = await signed_in_admin(demo, browser)
    await dashboard.goto(f"{demo.server.url}/dashboard#/customers/{customer_id}")
    await dashboard.locator("[data-task=complete_profile][data-status=AVAILABLE]").wait_for()
    # The checklist as a company embeds it: its server asks for a short-lived CUSTOMER token
    # and its page puts it in the fragment.
    issued = await demo.gql(
        "mutation($c: ID!) { issueCustomerToken(customerId: $c, ttlMinutes: 10) { token } }",
        {"c": customer_id},
    )
    token = issued["data"]["issueCustomerToken"]["token"]
    checklist = await browser.page()
    await checklist.goto(f"{demo.server.url}/checklist#token={token}")
    await checklist.locator("[data-task=complete_profile][data-status=AVAILABLE]").wait_for()
    assert "#token" not in checklist.url
    await shot(checklist, "checklist-before")
    await asyncio.sleep(1.0)  # both pages' subscriptions are open

    done = await move(demo, customer_id, "complete_profile")
    started = time.monotonic()  # the task is completed: its mutation has answered
    assert [c["title"] for c in done["data"]["updateTask"]["celebrations"]], done
    # Neither page polls: only their subscriptions can bring the change. How fast it comes is
    # measured by `bench.fanout`, not here.
    await asyncio.gather(
        *(
            page.locator(selector).wait_for()
            for page in (dashboard, checklist)
            for selector in (
                "[data-task=complete_profile][data-status=COMPLETED]",
                ".celebration-banner",
            )
        )
    )
    elapsed = time.monotonic() - started
    print(f"task completed -> shown on both pages with the celebration in {elapsed:.2f} s")
    assert "Welcome" in await checklist.locator(".celebration-banner").inner_text()
    assert await checklist.locator("canvas.confetti").count() == 1
    await shot(checklist, "checklist-celebration")
    # Both pages show the API's percent as it is (a CUSTOMER and, outside the embedded
    # default, a CSM cannot introspect the schema: the pages must not depend on it).
    shown = await demo.gql(
        "query($c: ID) { workflow(customerId: $c) { progress } }", {"c": customer_id}
    )
    expected = f"{round(shown['data']['workflow']['progress'])} %"
    for page in (checklist, dashboard):
        await (
            page.locator("[data-field=progress]")
            .get_by_text(expected, exact=True)
            .wait_for(timeout=5000)
        )
    await dashboard.locator(".timeline li[data-type='stage.completed']").wait_for()
    await shot(dashboard, "dashboard-customer")

    # Buttons on the checklist call updateTask: start, then complete, the next task.
    card = checklist.locator("[data-task=connect_data_source]")
    await card.get_by_role("button", name="Start: Connect a data source").click()
    await checklist.locator("[data-task=connect_data_source][data-status=IN_PROGRESS]").wait_for()
    await card.get_by_role("button", name="Mark complete: Connect a data source").click()
    await checklist.locator("[data-task=connect_data_source][data-status=COMPLETED]").wait_for()
    locked = checklist.locator("[data-task=configure_notifications] .locked-reason")
    assert await locked.inner_text() == "Unlocks when “Invite your teammates” is done."


async def test_an_admin_overrides_a_stage_from_the_page(demo: Demo, browser: Browser) -> None:
    customer_id, _ = await new_customer(demo)
    page = await signed_in_admin(demo, browser)
    await page.goto(f"{demo.server.url}/dashboard#/customers/{customer_id}")
    form = page.locator("form.override:not(.health-override)")
    # The timeline replays the customer's events one by one; the milestones are asked for once
    # for the replay, not once per replayed event (and once more per live burst at most).
    await page.locator(".timeline li").nth(4).wait_for()
    await asyncio.sleep(0.5)
    assert 1 <= browser.count(0, "Milestones") <= 2, browser.operations
    await form.get_by_label("Stage").select_option("setup")
    await form.get_by_label("Action").select_option("COMPLETE")
    await form.get_by_role("button", name="Apply override").click()
    refusal = form.get_by_role("alert")
    await refusal.wait_for()
    assert "VALIDATION_FAILED" in await refusal.inner_text()
    await form.get_by_label("Reason").fill("Set up on a call with the customer")
    await form.get_by_role("button", name="Apply override").click()
    await form.get_by_text("Setup is now Completed.").wait_for()
    await page.locator("[data-stage=setup] h3 .status").get_by_text("Completed").wait_for()
    body = await demo.gql(
        "query($c: ID) { stages(customerId: $c) { key status } }", {"c": customer_id}
    )
    assert {s["key"]: s["status"] for s in body["data"]["stages"]}["setup"] == "COMPLETED"


async def test_a_customer_cannot_open_the_dashboard(demo: Demo, browser: Browser) -> None:
    page = await browser.page()
    await page.goto(demo.links["Checklist"])
    await page.wait_for_url("**/checklist")
    await page.locator("[data-stage=welcome]").wait_for()
    await page.goto(f"{demo.server.url}/dashboard")
    refused = page.get_by_role("alert")
    await refused.wait_for()
    assert "needs an ADMIN or CSM sign-in" in await refused.inner_text()
    await shot(page, "dashboard-refused-customer")
    body = await demo.gql("{ customers(first: 1) { totalCount } }", role="CUSTOMER")
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_graphiql_opens_with_the_operators_token(demo: Demo, browser: Browser) -> None:
    page = await signed_in_admin(demo, browser)
    async with page.context.expect_page() as popup:
        await page.get_by_role("link", name="GraphiQL ↗").click()
    ide = await popup.value
    await ide.locator(".graphiql-query-editor .CodeMirror").wait_for(timeout=30_000)
    await ide.locator(".graphiql-execute-button").click()
    await ide.locator(".graphiql-response").get_by_text('"role": "ADMIN"').wait_for(timeout=15_000)
