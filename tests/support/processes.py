"""Real `liftoff` processes for end-to-end tests.

`LiftoffServer` starts `liftoff serve` on a free port with a given environment, waits until
GET /healthz answers 200, writes everything the process prints to a log file, and stops it
with SIGTERM, then SIGKILL after a grace period. It signals only the process it started
(by its pid); it never looks processes up by name.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

import httpx

from tests.support.procs import free_port, terminate

ROOT = Path(__file__).resolve().parents[2]
_SCRUBBED = ("DATABASE_URL", "REDIS_URL")
_TOKEN = re.compile(r"^(ADMIN|CSM|CUSTOMER) token:\s*\n\s*(\S+)", re.MULTILINE)
_CUSTOMER_ID = re.compile(r"Sample customer id:\s*(\S+)")


def liftoff_command() -> list[str]:
    """The `liftoff` console script of this interpreter's environment."""
    script = Path(sys.executable).with_name("liftoff")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from app.cli import main; main()"]


def liftoff_env(overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without any Liftoff configuration, plus `overrides`.

    The parent's `DATABASE_URL`, `REDIS_URL` and `LIFTOFF_*` variables are dropped so a
    test states the configuration its server runs with.
    """
    env = {
        k: v for k, v in os.environ.items() if k not in _SCRUBBED and not k.startswith("LIFTOFF_")
    }
    env["PYTHONUNBUFFERED"] = "1"
    env["NO_COLOR"] = "1"
    env["COLUMNS"] = "200"
    env.update(overrides or {})
    return env


def run_liftoff(
    *args: str, env: Mapping[str, str], timeout: float = 120.0, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run one `liftoff` command to completion and return its output."""
    done = subprocess.run(
        [*liftoff_command(), *args],
        env=dict(env),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    if check and done.returncode != 0:
        raise AssertionError(
            f"`liftoff {' '.join(args)}` exited {done.returncode}:\n"
            f"stdout:\n{done.stdout[-4000:]}\nstderr:\n{done.stderr[-4000:]}"
        )
    return done


def parse_demo_tokens(output: str) -> dict[str, str]:
    """The ADMIN/CSM/CUSTOMER tokens and `customer_id` printed by `--demo`."""
    tokens = {role: token for role, token in _TOKEN.findall(output)}
    found = _CUSTOMER_ID.search(output)
    if found:
        tokens["customer_id"] = found.group(1)
    return tokens


class LiftoffServer:
    """One `liftoff serve` process on 127.0.0.1; touches only itself."""

    def __init__(
        self,
        *,
        env: Mapping[str, str],
        log_path: Path,
        args: Sequence[str] = (),
        host: str = "127.0.0.1",
        port: int | None = None,
        startup_timeout: float = 180.0,
        stop_timeout: float = 20.0,
        cwd: Path = ROOT,
    ) -> None:
        self.env = dict(env)
        self.log_path = log_path
        self.args = list(args)
        self.host = host
        self.port = port if port is not None else free_port(host)
        self._port_given = port is not None
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.cwd = cwd
        self.returncode: int | None = None
        self.killed = False
        self._process: subprocess.Popen[bytes] | None = None
        self._log_offset = 0

    @property
    def url(self) -> str:
        """The server's base URL."""
        return f"http://{self.host}:{self.port}"

    @property
    def graphql_url(self) -> str:
        return f"{self.url}/graphql"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def stopped_gracefully(self) -> bool:
        """Whether the last stop ended in a clean shutdown, without SIGKILL.

        uvicorn handles SIGTERM by shutting down, then re-raises the signal, so a clean
        exit status is 0 or -SIGTERM.
        """
        return (
            not self.killed
            and self.returncode in (0, -signal.SIGTERM)
            and "Application shutdown complete" in self.output()
        )

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def output(self) -> str:
        """What this run of the process printed so far (stdout and stderr)."""
        if not self.log_path.exists():
            return ""
        with self.log_path.open("rb") as fh:
            fh.seek(self._log_offset)
            return fh.read().decode(errors="replace")

    def start(self) -> LiftoffServer:
        """Start the server and wait for a healthy /healthz; retry once on a stolen port."""
        attempts = 1 if self._port_given else 3
        for attempt in range(attempts):
            try:
                self._spawn()
                return self
            except _PortTaken:
                if attempt + 1 == attempts:
                    raise
                self.port = free_port(self.host)
        return self  # pragma: no cover

    def stop(self) -> int | None:
        """SIGTERM, wait `stop_timeout`, then SIGKILL; return the exit status."""
        process, self._process = self._process, None
        if process is None:
            return self.returncode
        if terminate(process, grace=self.stop_timeout):
            self.killed = True
        self.returncode = process.returncode
        return self.returncode

    def __enter__(self) -> LiftoffServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _spawn(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self._log_offset = log.tell()
            command = [
                *liftoff_command(),
                "serve",
                "--host",
                self.host,
                "--port",
                str(self.port),
                *self.args,
            ]
            log.write(f"$ {' '.join(command)}\n".encode())
            log.flush()
            self._process = subprocess.Popen(
                command,
                env=self.env,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self.returncode = self._process.returncode
                self._process = None
                text = self.output()
                if "address already in use" in text.lower():
                    raise _PortTaken(text)
                raise RuntimeError(
                    f"liftoff serve exited with {self.returncode} before it was healthy:\n"
                    + text[-6000:]
                )
            if self._healthy():
                return
            time.sleep(0.2)
        text = self.output()
        self.stop()
        raise RuntimeError(
            f"liftoff serve was not healthy on {self.url} within {self.startup_timeout}s:\n"
            + text[-6000:]
        )

    def _healthy(self) -> bool:
        try:
            return httpx.get(f"{self.url}/healthz", timeout=2.0).status_code == 200
        except httpx.HTTPError:
            return False


class _PortTaken(RuntimeError):
    pass


def stop_embedded_postgres(pgdata: Path, *, timeout: float = 60.0) -> bool:
    """Stop the embedded PostgreSQL of `pgdata` if one still runs there (`pg_ctl stop`).

    A safety net for a test's own data folder: a `liftoff serve` that exits normally
    stops its embedded server itself; one that had to be SIGKILLed leaves it running.
    """
    if not (pgdata / "postmaster.pid").exists():
        return False
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    user = "embedded_postgres" if hasattr(os, "geteuid") and os.geteuid() == 0 else None
    subprocess.run(
        [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(pgdata), "-m", "fast", "-w", "stop"],
        user=user,
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    return True
