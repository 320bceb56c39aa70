"""Emails over a real SMTP server and webhooks to a real receiver that verifies signatures:
retries on a compressed schedule, dead letter and replay, 410, SSRF refusals."""

from __future__ import annotations

from datetime import timedelta

from app.automation.models import ActionExecution, ActionStatus, AutomationRun, RunStatus
from app.db import transaction
from app.deliveries import service as deliveries
from app.deliveries.models import Delivery, DeliveryStatus, WebhookEndpoint
from app.kit.clock import utcnow
from app.settings import Settings
from tests.automation.peers import Received, SmtpServer, WebhookReceiver
from tests.automation.support import Drain, add_rule, definition, runs_of, send_all
from tests.support.factories import Tenant

WELCOME = {
    "type": "send_email",
    "subject": "Welcome, {{ customer.name }}",
    "text": "Hi {{ customer.name }}, step one is {{ workflow.currentStage }}.",
    "html": "<p>Hi {{ customer.name }}</p>",
}
FAST = {"webhook_retry_scale": 0.00002, "webhook_allow_private": True}


async def make_endpoint(tenant: Tenant, url: str, types: list[str]) -> WebhookEndpoint:
    async with transaction():
        return await deliveries.create_endpoint(tenant.admin, url=url, event_types=types)


async def wait_and_send(settings: Settings, *, until: float = 15.0) -> None:
    """Deliver repeatedly while retries come due (the schedule is compressed)."""
    import asyncio

    deadline = utcnow() + timedelta(seconds=until)
    while utcnow() < deadline:
        await send_all(settings)
        if not await Delivery.filter(status=DeliveryStatus.PENDING).exists():
            return
        await asyncio.sleep(0.02)


async def test_email_goes_over_smtp_with_rendered_content_and_a_stable_id(tenant: Tenant) -> None:
    rule = await add_rule(tenant, definition("customer.created", WELCOME))
    await tenant.customer(name="Grace", email="grace@example.com")
    await Drain(tenant)()
    with SmtpServer() as smtp:
        settings = Settings(smtp_url=smtp.url, mail_from="Team <team@example.com>")
        await send_all(settings)  # (due deliveries of other tests go out too)
        [msg] = [m for m in smtp.messages if m["To"] == "grace@example.com"]
    assert msg["To"] == "grace@example.com" and msg["Subject"] == "Welcome, Grace"
    assert msg["From"] == "Team <team@example.com>"
    parts = {
        p.get_content_type(): p.get_payload(decode=True).decode()
        for p in msg.walk()
        if not p.is_multipart()
    }
    assert parts["text/plain"].strip() == "Hi Grace, step one is welcome."
    assert parts["text/html"].strip() == "<p>Hi Grace</p>"
    [row] = await Delivery.filter(organization_id=tenant.id)
    assert msg["X-Liftoff-Message-Id"] == row.message_id and row.transport == "smtp"
    [run] = await runs_of(rule)
    assert run.status is RunStatus.SUCCEEDED
    [action] = await ActionExecution.filter(run_id=run.id)
    assert action.status is ActionStatus.DONE and action.attempts == 1


async def test_without_smtp_mail_is_kept_in_the_local_outbox(tenant: Tenant) -> None:
    await add_rule(tenant, definition("customer.created", WELCOME))
    await tenant.customer(name="Linus")
    await Drain(tenant)()
    await send_all(Settings(smtp_url=None))
    [row] = await Delivery.filter(organization_id=tenant.id)
    assert row.status is DeliveryStatus.SUCCEEDED and row.transport == "local"
    assert row.subject == "Welcome, Linus" and "step one is welcome" in row.payload["text"]


async def test_smtp_down_retries_then_delivers_once(tenant: Tenant) -> None:
    await add_rule(tenant, definition("customer.created", WELCOME))
    await tenant.customer()
    await Drain(tenant)()
    smtp = SmtpServer()
    settings = Settings(smtp_url=smtp.url, webhook_retry_scale=0.0001)
    await send_all(settings, rounds=1)  # nobody listens yet
    [row] = await Delivery.filter(organization_id=tenant.id)
    assert row.status is DeliveryStatus.PENDING and row.attempts == 1 and "SMTP" in row.last_error
    with smtp:
        await wait_and_send(settings)
    await row.refresh_from_db()
    assert row.status is DeliveryStatus.SUCCEEDED and row.attempts == 2
    assert len(smtp.by_id()[row.message_id]) == 1


async def test_webhooks_are_signed_retried_with_one_id_and_dead_lettered_then_replayed(
    tenant: Tenant,
) -> None:
    rule = await add_rule(
        tenant,
        definition(
            "customer.created",
            {
                "type": "webhook",
                "event": "customer.signed_up",
                "data": {"name": "{{ customer.name }}", "plan": "trial"},
            },
        ),
    )
    fail_all = True

    def respond(r: Received, n: int) -> tuple[int, dict[str, str]]:
        return (503, {}) if fail_all else (204, {})

    with WebhookReceiver(respond=respond) as receiver:
        endpoint = await make_endpoint(tenant, receiver.url, ["customer.signed_up"])
        receiver.secret = endpoint.secret
        await tenant.customer(name="Ada")
        await Drain(tenant)()
        await wait_and_send(Settings(**FAST))
        assert len(receiver.received) == 8  # immediately, then the 7 Svix retries
        assert all(r.verified for r in receiver.received)
        assert len({r.headers["webhook-id"] for r in receiver.received}) == 1
        body = receiver.received[0].payload
        assert body["type"] == "customer.signed_up"
        assert body["data"] == {"name": "Ada", "plan": "trial"}
        [row] = await Delivery.filter(endpoint_id=endpoint.id)
        assert row.status is DeliveryStatus.DEAD and row.attempts == 8
        assert row.last_status_code == 503
        [run] = await runs_of(rule)
        assert run.status is RunStatus.FAILED
        [action] = await ActionExecution.filter(run_id=run.id)
        assert action.status is ActionStatus.FAILED and action.error_kind == "delivery_failed"
        assert action.attempts == 8

        page = await deliveries.list_deliveries(
            tenant.admin, kind=row.kind, endpoint_id=str(endpoint.id), status=DeliveryStatus.DEAD
        )
        assert [d.id for d in page.items] == [row.id]
        fail_all = False
        async with transaction():
            await deliveries.replay(tenant.admin, str(row.id))
        await wait_and_send(Settings(**FAST))
        assert len(receiver.received) == 9
        assert receiver.received[-1].headers["webhook-id"] == row.message_id
        assert receiver.received[-1].verified
    await row.refresh_from_db()
    assert row.status is DeliveryStatus.SUCCEEDED
    await run.refresh_from_db()
    assert run.status is RunStatus.SUCCEEDED


async def test_410_disables_the_endpoint(tenant: Tenant) -> None:
    await add_rule(tenant, definition("customer.created", {"type": "webhook", "event": "x.y"}))
    with WebhookReceiver(respond=lambda r, n: (410, {})) as receiver:
        endpoint = await make_endpoint(tenant, receiver.url, ["*"])
        drain = Drain(tenant)
        await tenant.customer()
        await drain()
        await wait_and_send(Settings(**FAST))
        assert len(receiver.received) == 1  # no retry after 410
        await endpoint.refresh_from_db()
        assert not endpoint.enabled and "410" in (endpoint.disabled_reason or "")
        [row] = await Delivery.filter(endpoint_id=endpoint.id)
        assert row.status is DeliveryStatus.DISABLED
        later = await tenant.customer()
        await drain()
        await wait_and_send(Settings(**FAST))
        assert len(receiver.received) == 1
    [run] = await AutomationRun.filter(customer_id=later.id)
    [action] = await ActionExecution.filter(run_id=run.id)
    assert action.status is ActionStatus.FAILED and action.error_kind == "no_endpoint"


async def test_rotation_signs_with_both_secrets_during_the_grace(tenant: Tenant) -> None:
    await add_rule(tenant, definition("customer.created", {"type": "webhook", "event": "a.b"}))
    with WebhookReceiver() as receiver:
        endpoint = await make_endpoint(tenant, receiver.url, ["a.b"])
        old = endpoint.secret
        async with transaction():
            rotated = await deliveries.rotate_secret(tenant.admin, str(endpoint.id))
        assert rotated.secret != old and rotated.previous_secret == old
        await tenant.customer()
        await Drain(tenant)()
        await send_all(Settings(**FAST))
        [got] = receiver.received
        from standardwebhooks.webhooks import Webhook

        for secret in (old, rotated.secret):
            Webhook(secret).verify(got.body, got.headers)  # both verify
        assert len(got.headers["webhook-signature"].split(" ")) == 2


async def test_private_destinations_are_refused_also_by_dns_and_redirect(tenant: Tenant) -> None:
    await add_rule(tenant, definition("customer.created", {"type": "webhook", "event": "s.s"}))

    def redirect(r: Received, n: int) -> tuple[int, dict[str, str]]:
        return 307, {"location": "http://169.254.169.254/latest/meta-data/"}

    with WebhookReceiver() as direct, WebhookReceiver(respond=redirect) as hop:
        by_ip = await make_endpoint(tenant, direct.url, ["s.s"])
        by_name = await make_endpoint(tenant, direct.url.replace("127.0.0.1", "localhost"), ["s.s"])
        to_private = await make_endpoint(tenant, hop.url, ["s.s"])
        await tenant.customer()
        await Drain(tenant)()
        # Only the redirecting receiver is allow-listed; the address it redirects to is not.
        await send_all(Settings(webhook_private_hosts=[f"127.0.0.1:{hop.port}"]))
        assert direct.received == [] and len(hop.received) == 1
    rows = {r.endpoint_id: r for r in await Delivery.filter(organization_id=tenant.id)}  # type: ignore[attr-defined]
    for endpoint, needle in (
        (by_ip, "127.0.0.1"),
        (by_name, "localhost resolves to a private"),
        (to_private, "169.254.169.254"),
    ):
        row = rows[endpoint.id]
        assert row.status is DeliveryStatus.DEAD and row.attempts == 1, row.last_error
        assert row.last_error and row.last_error.startswith("refused destination"), row.last_error
        assert needle in row.last_error
    [run] = await AutomationRun.filter(organization_id=tenant.id)
    [action] = await ActionExecution.filter(run_id=run.id)
    assert action.error_kind == "refused_destination"
