"""`liftoff install-milestones`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from app.accounts.models import Role
from app.settings import get_settings


def install_milestones_cmd(
    org: Annotated[str, typer.Option(help="Organization slug or id.")],
    path: Annotated[
        Path | None,
        typer.Argument(
            help="YAML or JSON milestone set; the bundled default when left out.",
            dir_okay=False,
        ),
    ] = None,
) -> None:
    """Validate a milestone set and install it as the organization's next version."""
    from app.accounts.viewer import Viewer
    from app.cli import _find_org, _run_or_exit, console
    from app.db import transaction
    from app.milestones.definitions import bundled_default_text
    from app.milestones.service import install_set

    settings = get_settings()
    text = path.read_text() if path else bundled_default_text()

    async def go() -> Any:
        found = await _find_org(org)
        viewer = Viewer(subject="cli", organization_id=found.id, role=Role.ADMIN)
        async with transaction():
            return await install_set(viewer, definition=text, created_by="cli")

    row = _run_or_exit(settings, go)
    count = len(row.definition.get("milestones") or ())
    console.print(json.dumps({"id": str(row.id), "version": row.version, "milestones": count}))


def register(cli: typer.Typer) -> None:
    """Add the milestone commands to the `liftoff` command."""
    cli.command("install-milestones")(install_milestones_cmd)
