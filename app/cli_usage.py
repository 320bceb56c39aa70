"""`liftoff api-key create|list|revoke`, `liftoff import-events` and
`liftoff event-retention`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from app.accounts.models import Role
from app.settings import get_settings

api_key_cli = typer.Typer(help="API keys of an organization's servers.", no_args_is_help=True)

Org = Annotated[str, typer.Option(help="Organization slug or id.")]


@api_key_cli.command("create")
def create(
    org: Org,
    name: Annotated[str, typer.Option(help="What the key is for, e.g. `billing server`.")],
) -> None:
    """Create an ingest key and print its secret (shown this once)."""
    from app.accounts.apikeys import create_key
    from app.accounts.viewer import Viewer
    from app.cli import _find_org, _run_or_exit, console
    from app.db import transaction

    async def go() -> tuple[str, str]:
        found = await _find_org(org)
        cli = Viewer(subject="cli", organization_id=found.id, role=Role.ADMIN)
        async with transaction():
            row, secret = await create_key(cli, name=name)
        return str(row.id), secret

    key_id, secret = _run_or_exit(get_settings(), go)
    console.print(f"API key {key_id} created; its secret (shown only now):", highlight=False)
    typer.echo(secret)


@api_key_cli.command("list")
def list_cmd(org: Org) -> None:
    """List the organization's keys (never their secrets)."""
    from app.accounts.apikeys import list_keys
    from app.accounts.models import ApiKey
    from app.accounts.viewer import Viewer
    from app.cli import _find_org, _run_or_exit

    async def go() -> list[ApiKey]:
        found = await _find_org(org)
        return await list_keys(Viewer(subject="cli", organization_id=found.id, role=Role.ADMIN))

    for row in _run_or_exit(get_settings(), go):
        state = f"revoked {row.revoked_at:%Y-%m-%d %H:%M}" if row.revoked_at else "active"
        used = f"{row.last_used_at:%Y-%m-%d %H:%M}" if row.last_used_at else "never"
        typer.echo(f"{row.id}  {row.prefix}…  {row.name!r}  {state}  last used {used}")


@api_key_cli.command("revoke")
def revoke(org: Org, key_id: Annotated[str, typer.Argument(help="The key's id.")]) -> None:
    """Revoke a key; api processes refuse it within LIFTOFF_AUTH_CACHE_SECONDS."""
    from app.accounts.apikeys import revoke_key
    from app.accounts.viewer import Viewer
    from app.cli import _find_org, _run_or_exit
    from app.db import transaction

    settings = get_settings()

    async def go() -> str:
        from app.accounts.access import CHANNEL

        found = await _find_org(org)
        cli = Viewer(subject="cli", organization_id=found.id, role=Role.ADMIN)
        async with transaction():
            row = await revoke_key(cli, key_id)
        if settings.redis_url:  # api processes forget the key at once
            import redis.asyncio as redis

            client = redis.from_url(settings.redis_url)
            try:
                await client.publish(CHANNEL, f"{found.id}:{row.prefix}")
            finally:
                await client.aclose()
        return row.prefix

    prefix = _run_or_exit(settings, go)
    typer.echo(f"API key {prefix}… revoked.")


def event_retention(
    org: Org,
    days: Annotated[
        int | None,
        typer.Option(help="Days of usage events to keep; leave out to use the default."),
    ] = None,
) -> None:
    """Set how long an organization's usage events are kept (default
    LIFTOFF_EVENT_RETENTION_DAYS); the worker prunes what falls out."""
    from app.cli import _find_org, _run_or_exit
    from app.usage.retention import set_retention_days

    async def go() -> None:
        found = await _find_org(org)
        await set_retention_days(found.id, days)

    _run_or_exit(get_settings(), go)
    kept = f"{days} days" if days else f"the default ({get_settings().event_retention_days} days)"
    typer.echo(f"Usage events of {org} are kept for {kept}.")


def import_events(
    file: Annotated[
        Path, typer.Argument(help="CSV (with a header) or JSON Lines.", exists=True, dir_okay=False)
    ],
    org: Org,
    fmt: Annotated[
        str | None, typer.Option("--format", help="csv or jsonl (default: by the file's ending).")
    ] = None,
    rejects: Annotated[
        Path | None,
        typer.Option(help="Where refused lines go (default: FILE.rejected.csv)."),
    ] = None,
    chunk: Annotated[int, typer.Option(min=100, help="Lines per transaction.")] = 20_000,
    python_reader: Annotated[
        bool,
        typer.Option(
            "--python-reader",
            help="Read and check every CSV line in Python instead of PostgreSQL (slower).",
        ),
    ] = False,
) -> None:
    """Backfill usage events from a file: streamed, bulk-loaded with COPY, idempotent on rerun
    (lines whose idempotency key is known count as duplicates)."""
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeRemainingColumn,
    )

    from app.cli import _find_org, _run_or_exit, console
    from app.usage.backfill import Report, import_file
    from app.usage.importer import FORMATS, format_of
    from app.usage.retention import retention_days

    if fmt is not None and fmt not in FORMATS:
        raise typer.BadParameter(f"--format must be one of {', '.join(FORMATS)}")
    settings = get_settings()
    out = rejects or file.with_name(file.name + ".rejected.csv")
    columns = (
        TextColumn("Importing"),
        BarColumn(),
        TaskProgressColumn(),
        DownloadColumn(),
        TextColumn("{task.fields[lines]} lines · {task.fields[rate]} events/s"),
        TimeRemainingColumn(),
    )

    async def go() -> Report:
        import time

        found = await _find_org(org)
        days = await retention_days(found.id, default=settings.event_retention_days)
        start = time.perf_counter()
        with Progress(*columns, console=console, transient=False) as bar:
            task = bar.add_task("import", total=file.stat().st_size, lines="0", rate="-")

            def progressed(done: int, total: int, report: Report) -> None:
                rate = (report.accepted + report.duplicates) / max(
                    time.perf_counter() - start, 1e-9
                )
                bar.update(
                    task,
                    completed=done,
                    total=total,
                    lines=f"{report.lines:,}",
                    rate=f"{rate:,.0f}",
                )

            return await import_file(
                file,
                organization_id=found.id,
                fmt=format_of(str(file), fmt),
                rejects=out,
                retention_days=days,
                actor="import:cli",
                chunk_lines=chunk,
                on_progress=progressed,
                fast=not python_reader,
            )

    report = _run_or_exit(settings, go)
    rate = report.lines / max(report.seconds, 1e-9)
    typer.echo(
        f"{report.lines:,} lines in {report.seconds:.1f}s ({rate:,.0f} lines/s): "
        f"{report.accepted:,} accepted, {report.duplicates:,} duplicates, "
        f"{report.rejected:,} rejected (see {out})."
    )


def register(cli: typer.Typer) -> None:
    cli.add_typer(api_key_cli, name="api-key")
    cli.command("import-events")(import_events)
    cli.command("event-retention")(event_retention)
