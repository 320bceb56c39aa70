"""`liftoff api-key create|list|revoke`, `liftoff import-events` and
`liftoff event-retention`."""

from __future__ import annotations

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


def register(cli: typer.Typer) -> None:
    cli.add_typer(api_key_cli, name="api-key")
    cli.command("event-retention")(event_retention)
