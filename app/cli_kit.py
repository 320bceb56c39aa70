"""Shared pieces of the `liftoff` command: one-line failures, the role option, the port check."""

from __future__ import annotations

import socket
import sys
from typing import NoReturn

import typer

try:  # typer 0.2x ships its own copy of click; older ones use click itself
    from typer._click import exceptions as cx
    from typer._click.utils import echo
except ImportError:  # pragma: no cover
    from click import echo  # type: ignore[assignment]
    from click import exceptions as cx  # type: ignore[no-redef]

from app.accounts.models import Role
from app.db import DatabaseUnavailable
from app.embedded import EmbeddedPostgresFailed
from app.errors import DomainError


def one_line(text: str) -> str:
    """`text` with its line breaks and runs of spaces folded into single spaces."""
    return " ".join(text.split())


def fail(message: str, *, code: int = 2) -> NoReturn:
    """Print `liftoff: <message>` on stderr, as is (no markup), and exit with `code`."""
    echo(f"liftoff: {one_line(message)}", err=True)
    raise SystemExit(code)


def run(app: typer.Typer, args: list[str] | None = None) -> NoReturn:
    """Run the command; every failure a user can cause ends in one line and a non-zero exit."""
    try:
        result = app(args=args, standalone_mode=False)
    except cx.NoArgsIsHelpError as exc:
        echo(exc.ctx.get_help() if exc.ctx else exc.format_message())
        raise SystemExit(2) from None
    except cx.UsageError as exc:
        where = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx else ""
        fail(exc.format_message() + where, code=exc.exit_code)
    except cx.ClickException as exc:
        fail(exc.format_message(), code=exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        fail("interrupted", code=130)
    except DomainError as exc:
        fail(f"{exc.code}: {exc.message}", code=2)
    except (DatabaseUnavailable, EmbeddedPostgresFailed) as exc:
        fail(str(exc), code=1)
    raise SystemExit(result if isinstance(result, int) else 0)


ROLE_HELP = "ADMIN, CSM or CUSTOMER (any case)."


def parse_role(value: str | None) -> Role | None:
    """The `--role` option: upper-case names, accepted in any case."""
    if value is None:
        return None
    try:
        return Role(value.upper())
    except ValueError:
        names = ", ".join(r.value for r in Role)
        raise typer.BadParameter(f"{value!r} is not one of {names}.") from None


def ensure_port_free(host: str, port: int) -> None:
    """Refuse at once (before any install, migration or seeding) when `host:port` is taken."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        if sys.platform != "win32":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            sock.bind((host, port))
        except OSError as exc:
            fail(
                f"cannot listen on {host}:{port}: {exc.strerror}; pass --port or stop what uses it"
            )
