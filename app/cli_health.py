"""`liftoff health recompute` and `liftoff install-health-model`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from app.accounts.models import Role
from app.settings import get_settings

health = typer.Typer(help="Health scores.", no_args_is_help=True)


@health.command("recompute")
def recompute_cmd(org: Annotated[str, typer.Option(help="Organization slug or id.")]) -> None:
    """Recompute every customer's health score now, with a progress bar."""
    import time

    from app.cli import _find_org, _run_or_exit, console
    from app.health.recompute import recompute_all

    settings = get_settings()
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]} customers/s"),
        TimeRemainingColumn(),
    )

    async def go() -> tuple[int, int, float]:
        found = await _find_org(org)
        start = time.perf_counter()
        with Progress(*columns, console=console) as bar:
            job = bar.add_task("Recomputing health", total=None, rate="-")

            def progressed(done: int, total: int) -> None:
                rate = done / max(time.perf_counter() - start, 1e-9)
                bar.update(job, completed=done, total=total, rate=f"{rate:,.0f}")

            scored, changed = await recompute_all(found.id, on_progress=progressed)
        return scored, changed, time.perf_counter() - start

    scored, changed, seconds = _run_or_exit(settings, go)
    console.print(
        f"Recomputed {scored:,} customers in {seconds:.1f}s "
        f"({scored / max(seconds, 1e-9):,.0f}/s); {changed:,} moved notably."
    )


def install_health_model_cmd(
    org: Annotated[str, typer.Option(help="Organization slug or id.")],
    path: Annotated[
        Path | None,
        typer.Argument(
            help="YAML or JSON model; the bundled default when left out.", dir_okay=False
        ),
    ] = None,
) -> None:
    """Validate a health model and install it as the organization's next version."""
    from app.accounts.viewer import Viewer
    from app.cli import _find_org, _run_or_exit, console
    from app.db import transaction
    from app.health.definitions import bundled_default_text
    from app.health.versions import install_model

    settings = get_settings()
    text = path.read_text() if path else bundled_default_text()

    async def go() -> Any:
        found = await _find_org(org)
        viewer = Viewer(subject="cli", organization_id=found.id, role=Role.ADMIN)
        async with transaction():
            return await install_model(viewer, definition=text, created_by="cli")

    row = _run_or_exit(settings, go)
    console.print(json.dumps({"id": str(row.id), "version": row.version, "name": row.name}))


def register(cli: typer.Typer) -> None:
    """Add the health commands to the `liftoff` command."""
    cli.add_typer(health, name="health")
    cli.command("install-health-model")(install_health_model_cmd)
