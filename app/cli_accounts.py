"""`liftoff operator create|set-password` and `liftoff login-link`."""

from __future__ import annotations

from typing import Annotated

import typer

from app.accounts.models import Operator, Role
from app.cli import _find_org, _run_or_exit, console
from app.cli_kit import parse_role
from app.settings import get_settings

operator_cli = typer.Typer(help="Operators (ADMIN, CSM) and their passwords.", no_args_is_help=True)

Org = Annotated[str, typer.Option(help="Organization slug or id.")]
Email = Annotated[str, typer.Option(help="The person's email address.")]
Password = Annotated[
    str,
    typer.Option(
        prompt=True, confirmation_prompt=True, hide_input=True, help="At least 12 characters."
    ),
]


@operator_cli.command("create")
def create(
    org: Org,
    email: Email,
    role: Annotated[Role, typer.Option(help="ADMIN or CSM (any case).", parser=parse_role)],
    password: Password,
    name: Annotated[str, typer.Option(help="Display name.")] = "",
) -> None:
    """Add an operator with a password."""
    from app.accounts.signin import create_operator
    from app.accounts.viewer import Viewer
    from app.db import transaction

    async def go() -> Operator:
        found = await _find_org(org)
        viewer = Viewer(subject="cli", organization_id=found.id, role=Role.ADMIN)
        async with transaction():
            return await create_operator(
                viewer, email=email, name=name, role=role, password=password
            )

    row = _run_or_exit(get_settings(), go)
    console.print(f"{row.role} {row.email} created; sign in at {get_settings().base_url()}/signin")


@operator_cli.command("set-password")
def set_password_cmd(org: Org, email: Email, password: Password) -> None:
    """Set (or reset) an operator's password."""
    from app.accounts.service import check_email
    from app.accounts.signin import set_password
    from app.accounts.viewer import Viewer
    from app.db import transaction
    from app.errors import NotFound

    async def go() -> None:
        found = await _find_org(org)
        row = await Operator.get_or_none(organization_id=found.id, email=check_email(email))
        if row is None:
            raise NotFound(f"No operator {email} in {found.slug}.")
        cli = Viewer(subject="cli", organization_id=found.id, role=Role.ADMIN)
        async with transaction():
            await set_password(operator=row, password=password, by=cli)

    _run_or_exit(get_settings(), go)
    console.print(f"Password of {email} set.")


def login_link(
    org: Org,
    email: Email,
    host: Annotated[str | None, typer.Option(help="Host in the printed URL.")] = None,
    port: Annotated[int | None, typer.Option(help="Port in the printed URL.")] = None,
) -> None:
    """Print a single-use sign-in URL (15 minutes) for an operator or a customer."""
    typer.echo(_run_or_exit(get_settings(), lambda: mint_link(org, email, host=host, port=port)))


async def mint_link(org: str, email: str, *, host: str | None, port: int | None) -> str:
    """A sign-in URL for `email` in `org` (needs the database open)."""
    from app.accounts.signin import create_link
    from app.db import transaction

    found = await _find_org(org)
    async with transaction():
        secret, _ = await create_link(organization=found, email=email, created_by="cli")
    return f"{get_settings().base_url(host=host, port=port)}/signin#link={secret}"
