"""The `liftoff` command: serve, worker, migrate, demo, token, create-org, templates, schema."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import MofNCompleteColumn, Progress

from app.accounts.models import Operator, Organization, Role
from app.accounts.tokens import token_for
from app.cli_kit import ROLE_HELP, parse_role
from app.settings import Settings, get_settings

cli = typer.Typer(help="Liftoff: customer onboarding and success backend.", no_args_is_help=True)
console = Console()
T = TypeVar("T")


def main() -> None:
    """Entry point of the `liftoff` console script: failures are one line and a non-zero exit."""
    from app.cli_kit import run

    run(cli)


def _run(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    return asyncio.run(factory())


def _resolved_url(settings: Settings) -> str:
    from app.db import database_url

    return database_url(settings)


async def _with_db(
    settings: Settings, work: Callable[[], Awaitable[T]], *, connect: bool = True
) -> T:
    """Run `work` with the database; one that cannot be reached is DatabaseUnavailable."""
    from app.db import DatabaseUnavailable, close_db, init_db, redacted, unavailable_reason

    url = _resolved_url(settings)
    try:
        if connect:
            await init_db(url)
        return await work()
    except Exception as exc:
        reason = unavailable_reason(exc)
        if reason is None:
            raise
        raise DatabaseUnavailable(f"cannot use the database {redacted(url)}: {reason}") from None
    finally:
        await close_db()


def _run_or_exit(settings: Settings, work: Callable[[], Awaitable[T]]) -> T:
    """Run `work` with the database (refusals end the command through `app.cli_kit.run`)."""
    return _run(lambda: _with_db(settings, work))


@cli.command()
def migrate() -> None:
    """Apply pending database migrations and say which."""
    from app.db import migrate as run

    settings = get_settings()
    url = _resolved_url(settings)
    applied = _run(lambda: _with_db(settings, lambda: run(url), connect=False))
    if applied:
        console.print(
            f"Applied {len(applied)} migration(s): {', '.join(applied)}.",
            markup=False,
            soft_wrap=True,
        )
    else:
        console.print("Database is up to date: no migration to apply.")


@cli.command()
def makemigrations(
    name: Annotated[str | None, typer.Option(help="Migration name.")] = None,
) -> None:
    """Write a migration for model changes (development)."""
    from app.db import make_migrations

    paths = _run(lambda: make_migrations(_resolved_url(get_settings()), name=name))
    console.print("\n".join(paths) or "No changes detected.")


def _demo_workers(customers: int) -> int:
    """Processes that write a demo: one per core for large ones, else this process."""
    return max(1, os.cpu_count() or 1) if customers >= 20_000 else 1


def _demo_steps(customers: int) -> list[str]:
    """The phases `seed_demo` reports after the customers' usage, in order."""
    from app.demo_clone import ORIGINALS

    copied = ["Copying the simulated customers", "Scoring today's health"]
    return [
        "Scoring health over the history",
        "Evaluating milestones over the history",
        "Rolling up analytics",
        *(copied if customers > ORIGINALS else []),
    ]


def _seed_demo(settings: Settings, customers: int, base_url: str) -> dict[str, str]:
    from app.accounts.signin import create_link
    from app.db import transaction
    from app.demo import seed_demo

    async def go() -> dict[str, str]:
        with Progress(console=console, transient=False) as bar:
            job = bar.add_task("Seeding demo customers", total=customers)
            usage = bar.add_task("Ingesting their usage events", total=None)
            steps = _demo_steps(customers)
            later = bar.add_task("Health, milestones, analytics", total=len(steps))

            def phase(name: str) -> None:
                done = steps.index(name) if name in steps else len(steps)
                shown = "Health, milestones, analytics" if name == "Done" else name
                bar.update(later, description=shown, completed=done)

            result = await seed_demo(
                customers=customers,
                progress=lambda done, total: bar.update(job, completed=done),
                usage_progress=lambda done, total: bar.update(usage, completed=done, total=total),
                phase=phase,
                workers=_demo_workers(customers),
                database_url=_resolved_url(settings),
            )
        org = result.organization.id
        links = {}
        async with transaction():
            for role, email in (
                ("ADMIN", result.admin.email),
                ("CUSTOMER", result.sample_customer.email),
            ):
                secret, _ = await create_link(
                    organization=result.organization, email=email, created_by="demo"
                )
                links[f"{role}_link"] = f"{base_url}/signin#link={secret}"
        return {
            **links,
            "ADMIN": token_for(
                settings, subject=result.admin.email, organization_id=org, role=Role.ADMIN
            ),
            "CSM": token_for(
                settings, subject=result.csm.email, organization_id=org, role=Role.CSM
            ),
            "CUSTOMER": token_for(
                settings,
                subject=result.sample_customer.email,
                organization_id=org,
                role=Role.CUSTOMER,
                customer_id=result.sample_customer.id,
            ),
            "customer_id": str(result.sample_customer.id),
            "task_key": result.sample_task or "",
        }

    return _run(lambda: _with_db(settings, go))


def _print_tokens(tokens: dict[str, str], url: str, data_dir: Path) -> None:
    console.rule("Demo tokens")
    for role in ("ADMIN", "CSM", "CUSTOMER"):
        console.print(f"[bold]{role}[/bold] token:\n{tokens[role]}\n", soft_wrap=True)
    console.print(f"Sample customer id: {tokens['customer_id']}")
    variables = {"customerId": tokens["customer_id"], "taskKey": tokens["task_key"]}
    console.rule("Ready to paste into GraphiQL (the README's examples use them)")
    console.print(f"GraphiQL: {url}/graphql", soft_wrap=True)
    headers = json.dumps({"Authorization": f"Bearer {tokens['ADMIN']}"})
    console.print(f"Headers:   {headers}", soft_wrap=True, markup=False)
    console.print(f"Variables: {json.dumps(variables)}", soft_wrap=True, markup=False)
    env_file = _write_demo_env(tokens, data_dir)
    console.print(
        f"Shell: . {env_file}  (sets ADMIN, CSM, CUSTOMER, CUSTOMER_ID, TASK_KEY)",
        soft_wrap=True,
        markup=False,
    )
    console.rule("Pages (each link signs one browser in once, within 15 minutes)")
    console.print(f"Dashboard (ADMIN): {tokens['ADMIN_link']}", soft_wrap=True)
    console.print(f"Checklist (sample customer): {tokens['CUSTOMER_link']}", soft_wrap=True)
    console.print(
        f"More links: liftoff login-link --org demo --email csm@demo.example  "
        f"(sign-in page: {url}/signin)",
        soft_wrap=True,
    )


def _write_demo_env(tokens: dict[str, str], data_dir: Path) -> Path:
    """The demo's tokens and sample variables as a shell file (readable by its owner only)."""
    path = data_dir / "demo.env"
    path.parent.mkdir(parents=True, exist_ok=True)
    values = {
        **{role: tokens[role] for role in ("ADMIN", "CSM", "CUSTOMER")},
        "CUSTOMER_ID": tokens["customer_id"],
        "TASK_KEY": tokens["task_key"],
    }
    path.touch(mode=0o600)
    path.write_text("".join(f"{name}='{value}'\n" for name, value in values.items()))
    return path


@cli.command()
def demo(customers: Annotated[int, typer.Option(help="How many demo customers.")] = 1200) -> None:
    """Seed the demo organization (idempotent) and print its tokens."""
    settings = get_settings()
    migrate()
    url = settings.base_url()
    _print_tokens(_seed_demo(settings, customers, url), url, settings.data_dir)


@cli.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to bind.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to bind.")] = None,
    workers: Annotated[int, typer.Option(help="API processes.")] = 1,
    with_demo: Annotated[
        bool, typer.Option("--demo", help="Migrate and seed demo data first.")
    ] = False,
    demo_customers: Annotated[int, typer.Option(help="Customers in the demo.")] = 1200,
    no_migrate: Annotated[
        bool, typer.Option("--no-migrate", help="Do not apply migrations at start.")
    ] = False,
) -> None:
    """Run the API on uvicorn (the embedded PostgreSQL starts when DATABASE_URL is unset)."""
    import uvicorn

    from app.cli_kit import ensure_port_free, fail
    from app.embedded import exit_on_hangup

    settings = get_settings()
    bind_host, bind_port = host or settings.host, port or settings.port
    if workers > 1 and not settings.redis_url:
        fail("several api processes (--workers) need REDIS_URL to share live events")
    ensure_port_free(bind_host, bind_port)
    # Exit through Python on SIGTERM and SIGHUP, so atexit stops the embedded PostgreSQL.
    exit_on_hangup()
    url = _resolved_url(settings)
    os.environ["DATABASE_URL"] = url
    if not os.environ.get("LIFTOFF_SECRET_KEY"):
        os.environ["LIFTOFF_SECRET_KEY"] = settings.resolved_secret_key()
    get_settings.cache_clear()
    if no_migrate:
        _run(lambda: _with_db(settings, _ping))
    else:
        migrate()
    if with_demo:
        url = get_settings().base_url(host=bind_host, port=bind_port)
        _print_tokens(_seed_demo(get_settings(), demo_customers, url), url, get_settings().data_dir)
    from app.ops import logs

    logs.configure(level=settings.log_level, fmt=settings.log_format)
    if workers > 1:
        _share_metrics(settings)
    uvicorn.run(
        "app.asgi:create_app",
        factory=True,
        host=bind_host,
        port=bind_port,
        workers=workers,
        log_level=settings.log_level.lower(),
        ws="websockets-sansio",
        ws_ping_interval=settings.ws_keepalive_seconds,
        ws_ping_timeout=settings.ws_keepalive_seconds,
        ws_per_message_deflate=settings.ws_compression,
        log_config=None,
        # uvicorn's access lines only at INFO or below (its level is ours): above, it would
        # format each request's line only for the level to drop it
        access_log=_level_number(settings.log_level) <= logging.INFO,
        timeout_graceful_shutdown=max(1, int(settings.shutdown_seconds / 2)),
        ws_max_size=settings.max_body_bytes,
        server_header=False,
    )


def _level_number(name: str) -> int:
    """The number of a log level's name (INFO for a name `logging` does not know)."""
    return logging.getLevelNamesMapping().get(name.upper(), logging.INFO)


def _share_metrics(settings: Settings) -> None:
    """Point every api process at one fresh folder for their Prometheus samples."""
    import shutil

    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not folder:
        folder = str((settings.data_dir / "metrics").resolve())
        shutil.rmtree(folder, ignore_errors=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
    os.makedirs(folder, exist_ok=True)


async def _ping() -> None:
    from tortoise.connection import get_connection

    await get_connection("default").execute_query("SELECT 1")


@cli.command()
def worker() -> None:
    """Drain the outbox to Redis and run scheduled jobs (run one or more next to the api)."""

    from app.cli_kit import fail
    from app.runtime import Runtime

    settings = get_settings()
    if not settings.redis_url:
        fail("set REDIS_URL: without it the api process relays events itself")
    from app.ops import logs, tracing

    logs.configure(level=settings.log_level, fmt=settings.log_format)
    tracing.setup("liftoff-worker")
    if settings.metrics and settings.worker_metrics_port:
        from prometheus_client import start_http_server

        try:
            start_http_server(settings.worker_metrics_port, addr=settings.worker_metrics_host)
        except OSError as exc:
            logging.getLogger(__name__).warning(
                "worker metrics not served on %s:%d (%s)",
                settings.worker_metrics_host,
                settings.worker_metrics_port,
                exc,
            )

    async def go() -> None:
        runtime = Runtime(settings, run_worker=True)
        await runtime.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.add_signal_handler(sig, stop.set)
        console.print("Worker running; Ctrl-C to stop.")
        await stop.wait()
        try:
            await asyncio.wait_for(runtime.stop(), timeout=settings.shutdown_seconds)
        except TimeoutError:
            logging.getLogger(__name__).warning("worker stop timed out; exiting anyway")
        tracing.shutdown()

    _run(go)


token_cli = typer.Typer(help="Mint (default) or revoke bearer tokens.", no_args_is_help=False)
cli.add_typer(token_cli, name="token")


@token_cli.callback(invoke_without_command=True)
def token(
    ctx: typer.Context,
    org: Annotated[str | None, typer.Option(help="Organization slug or id.")] = None,
    role: Annotated[
        Role | None, typer.Option(help=ROLE_HELP, parser=parse_role, metavar="ROLE")
    ] = None,
    customer: Annotated[str | None, typer.Option(help="Customer id (CUSTOMER role).")] = None,
    subject: Annotated[
        str | None, typer.Option(help="Subject (default: an operator's email).")
    ] = None,
    ttl_hours: Annotated[
        int | None, typer.Option(min=1, help="Lifetime in hours (default LIFTOFF_TOKEN_TTL_HOURS).")
    ] = None,
) -> None:
    """Mint a bearer token for an operator or customer that exists (development)."""
    from app.kit.ids import parse_id

    if ctx.invoked_subcommand is not None:
        return
    if org is None or role is None:
        raise typer.BadParameter("--org and --role are required to mint a token")
    settings = get_settings()
    ttl = timedelta(hours=ttl_hours) if ttl_hours is not None else None
    if role is Role.CUSTOMER and not customer:
        raise typer.BadParameter("a CUSTOMER token needs --customer <customer id>")
    cid = parse_id(customer, what="customer") if customer else None

    async def go() -> str:
        from app.accounts.access import fresh_token
        from app.errors import DomainError

        found = await _find_org(org)
        if role is Role.CUSTOMER:
            from app.customers.models import Customer

            row = await Customer.get_or_none(id=cid, organization_id=found.id)
            if row is None:
                raise typer.BadParameter(f"no customer {customer!r} in organization {org!r}")
            name = subject or row.email
        else:
            operator = await Operator.filter(organization_id=found.id, role=role).first()
            name = subject or (operator.email if operator else f"{role.value.lower()}@{found.slug}")
        try:
            return await fresh_token(
                settings,
                subject=name,
                organization_id=found.id,
                role=role,
                customer_id=cid if role is Role.CUSTOMER else None,
                ttl=ttl,
            )
        except DomainError as exc:
            raise typer.BadParameter(exc.message) from None

    typer.echo(_run(lambda: _with_db(settings, go)))


@token_cli.command("revoke")
def token_revoke(
    org: Annotated[str, typer.Option(help="Organization slug or id.")],
    subject: Annotated[str, typer.Option(help="Whose tokens to revoke (email).")],
) -> None:
    """Revoke every token of a subject minted so far; open websockets are closed."""
    settings = get_settings()

    async def go() -> int:
        from app.accounts.access import revoke_tokens
        from app.accounts.viewer import Viewer
        from app.db import transaction

        found = await _find_org(org)
        admin = Viewer(subject="cli", organization_id=found.id, role=Role.ADMIN)
        async with transaction():
            version = await revoke_tokens(admin, subject=subject)
        await _announce(settings, f"{found.id}:{subject.strip()}")
        return version

    version = _run(lambda: _with_db(settings, go))
    typer.echo(f"Tokens of {subject} revoked; new tokens carry version {version}.")


@cli.command("rate-limit")
def rate_limit(
    org: Annotated[str, typer.Option(help="Organization slug or id.")],
    budget: Annotated[str, typer.Option(help="reads, writes, subscribes, organization or ingest.")],
    limit: Annotated[
        str | None, typer.Option(help="The organization's budget, e.g. 1200/minute.")
    ] = None,
    clear: Annotated[bool, typer.Option(help="Put the server's default back.")] = False,
    reason: Annotated[str | None, typer.Option(help="Why (kept in the audit log).")] = None,
) -> None:
    """Set an organization's own rate-limit budget, above the default too (admins of the
    organization may only lower theirs)."""
    if (limit is None) == (not clear):
        raise typer.BadParameter("give either --limit or --clear")
    settings = get_settings()

    async def go() -> str:
        from app.accounts import ratelimits
        from app.accounts.viewer import Viewer
        from app.db import transaction
        from app.errors import DomainError

        found = await _find_org(org)
        operator = Viewer(subject="cli", organization_id=found.id, role=Role.ADMIN)
        try:
            async with transaction():
                done = await ratelimits.set_override(
                    operator, settings, budget=budget, limit=limit, reason=reason, allow_raise=True
                )
        except DomainError as exc:
            raise typer.BadParameter(exc.message) from None
        await _announce(settings, f"{found.id}:*rate-limits*")
        return f"{found.slug}: {done.name} budget is {done.limit} (default {done.default})."

    typer.echo(_run(lambda: _with_db(settings, go)))


async def _announce(settings: Settings, message: str) -> None:
    """Tell every api process (over Redis, when there is one) that access in an organization
    changed (`app/accounts/access.py`)."""
    if not settings.redis_url:
        return
    import redis.asyncio as redis

    from app.accounts.access import CHANNEL

    client = redis.from_url(settings.redis_url)
    try:
        await client.publish(CHANNEL, message)
    finally:
        await client.aclose()


async def _find_org(key: str) -> Organization:
    try:
        row = await Organization.get_or_none(id=uuid.UUID(key))
    except ValueError:
        row = await Organization.get_or_none(slug=key)
    if row is None:
        raise typer.BadParameter(f"no organization {key!r}")
    return row


@cli.command("create-org")
def create_org(
    name: Annotated[str, typer.Option(help="Organization name.")],
    slug: Annotated[str, typer.Option(help="Short unique slug.")],
    admin_email: Annotated[str, typer.Option(help="First admin's email.")],
    admin_name: Annotated[str, typer.Option(help="First admin's name.")] = "",
    no_template: Annotated[
        bool, typer.Option("--no-template", help="Skip the default template.")
    ] = False,
) -> None:
    """Create an organization with its first ADMIN and the default template; print a token."""
    from app.db import transaction
    from app.onboarding.templates import open_organization

    settings = get_settings()

    async def go() -> str:
        async with transaction():
            new = await open_organization(
                name=name,
                slug=slug,
                admin_email=admin_email,
                admin_name=admin_name,
                created_by=admin_email,
                template=not no_template,
            )
        return token_for(
            settings, subject=new.admin.email, organization_id=new.organization.id, role=Role.ADMIN
        )

    tok = _run_or_exit(settings, go)
    console.print(f"Organization {slug!r} created. Admin token:")
    typer.echo(tok)


@cli.command("install-template")
def install_template_cmd(
    org: Annotated[str, typer.Option(help="Organization slug or id.")],
    path: Annotated[
        Path, typer.Argument(help="YAML or JSON definition.", exists=True, dir_okay=False)
    ],
    default: Annotated[
        bool, typer.Option("--default", help="Make it the default template.")
    ] = False,
) -> None:
    """Validate a template definition and install it as the next version of its key."""
    from app.accounts.viewer import Viewer
    from app.db import transaction
    from app.onboarding.templates import install_template

    settings = get_settings()

    async def go() -> Any:
        found = await _find_org(org)
        viewer = Viewer(subject="cli", organization_id=found.id, role=Role.ADMIN)
        async with transaction():
            return await install_template(
                viewer,
                definition=path.read_text(),
                make_default=default,
                created_by="cli",
            )

    row = _run_or_exit(settings, go)
    console.print(
        json.dumps(
            {"id": str(row.id), "key": row.key, "version": row.version, "default": row.is_default}
        )
    )


analytics_cli = typer.Typer(help="Analytics rollups.", no_args_is_help=True)
cli.add_typer(analytics_cli, name="analytics")


@analytics_cli.command("rebuild")
def analytics_rebuild(
    org: Annotated[str, typer.Option(help="Organization slug or id.")],
    chunk: Annotated[int, typer.Option(min=1, help="Customers per transaction.")] = 20_000,
    resume: Annotated[
        bool,
        typer.Option(
            help="Continue an interrupted rebuild: add only customers it had not reached."
        ),
    ] = False,
) -> None:
    """Recompute an organization's analytics rollups from its customers' current state, one
    transaction per chunk (the consumer may keep running; figures fill in as it goes)."""
    from app.analytics.maintain import rebuild
    from app.kit.clock import utcnow

    settings = get_settings()

    async def go() -> int:
        found = await _find_org(org)
        with Progress(
            *Progress.get_default_columns(), MofNCompleteColumn(), console=console
        ) as bar:
            job = bar.add_task(f"Rebuilding analytics of {found.slug}", total=None)

            def step(done: int, total: int) -> None:
                bar.update(job, completed=done, total=total)

            return await rebuild(found.id, now=utcnow(), chunk=chunk, resume=resume, progress=step)

    count = _run_or_exit(settings, go)
    console.print(f"[green]Rebuilt the analytics of {count} customers.[/green]")


@cli.command("export-schema")
def export_schema(
    output: Annotated[Path, typer.Option(help="Where to write the SDL.")] = Path("schema.graphql"),
    check: Annotated[
        bool, typer.Option("--check", help="Fail if the file is out of date.")
    ] = False,
) -> None:
    """Write the GraphQL schema as SDL (or check the committed one)."""
    from app.graphql.schema import export_sdl

    sdl = export_sdl()
    if check:
        if not output.exists() or output.read_text() != sdl:
            console.print(f"[red]{output} is out of date; run `liftoff export-schema`.[/red]")
            raise typer.Exit(1)
        return
    output.write_text(sdl)
    console.print(f"Wrote {output}")


def _register_account_commands() -> None:
    from app.cli_accounts import login_link, operator_cli

    cli.add_typer(operator_cli, name="operator")
    cli.command("login-link")(login_link)


_register_account_commands()


def _register_health_commands() -> None:
    from app.cli_health import register

    register(cli)


_register_health_commands()


def _register_usage_commands() -> None:
    from app.cli_usage import register

    register(cli)


_register_usage_commands()


def _register_milestone_commands() -> None:
    from app.cli_milestones import register

    register(cli)


_register_milestone_commands()
