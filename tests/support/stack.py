"""Real Liftoff processes for end-to-end tests: `liftoff serve` and `liftoff worker`.

Each process writes its output to a log file (shown when it fails to start), is started with
an explicit environment (nothing inherited that could change its settings), and is stopped by
its own pid: SIGTERM, then SIGKILL after a grace period.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path

from tests.support.procs import free_port, terminate

LIFTOFF = str(Path(sys.executable).with_name("liftoff"))
"""The `liftoff` console script of the virtualenv running the tests."""

_OWN_ENV = ("DATABASE_URL", "REDIS_URL")


def child_env(
    *, database_url: str, redis_url: str | None, secret_key: str, **settings: object
) -> dict[str, str]:
    """The environment of a Liftoff process: our URLs and secret, `LIFTOFF_<NAME>` per setting.

    Inherited `LIFTOFF_*`, `DATABASE_URL` and `REDIS_URL` variables are dropped so the
    developer's shell cannot change what a test starts.
    """
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("LIFTOFF_") and k not in _OWN_ENV
    }
    env.update(
        DATABASE_URL=database_url,
        LIFTOFF_SECRET_KEY=secret_key,
        PYTHONUNBUFFERED="1",
        LIFTOFF_LOG_LEVEL="INFO",
        LIFTOFF_WORKER_METRICS_PORT="0",
    )
    if redis_url:
        env["REDIS_URL"] = redis_url
    for name, value in settings.items():
        env[f"LIFTOFF_{name.upper()}"] = str(value)
    return env


class ServiceProcess:
    """One Liftoff process we started; touches only itself."""

    def __init__(self, name: str, args: list[str], env: Mapping[str, str]) -> None:
        self.name = name
        self.args = args
        self.env = dict(env)
        self._dir = Path(tempfile.mkdtemp(prefix=f"liftoff-{name}-"))
        self.log_path = self._dir / "output.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def log(self, tail: int = 4000) -> str:
        """The end of the process's output."""
        if not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")[-tail:]

    def spawn(self) -> ServiceProcess:
        """Launch the process (does not wait for it to be ready)."""
        assert self._process is None, f"{self.name} already started"
        with self.log_path.open("ab") as out:
            self._process = subprocess.Popen(
                self.args,
                env=self.env,
                cwd=self._dir,  # a data folder of its own, should anything be written
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        return self

    def wait_for(self, ready: object, *, timeout: float, what: str) -> None:
        """Poll `ready()` until true; raise with the process's log if it exits or times out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running:
                raise RuntimeError(f"{self.name} exited while waiting for {what}:\n{self.log()}")
            if ready():  # type: ignore[operator]
                return
            time.sleep(0.05)
        raise RuntimeError(f"{self.name}: no {what} within {timeout}s:\n{self.log()}")

    def stop(self, *, grace: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL after `grace` seconds; return the exit code."""
        process, self._process = self._process, None
        if process is None:
            return None
        terminate(process, grace=grace)
        return process.returncode

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs; the process is gone when this returns."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait()

    def wait_ready(self, timeout: float = 90.0) -> ServiceProcess:
        """Wait until the process serves; raise with its log if it exits or times out."""
        raise NotImplementedError


class ApiProcess(ServiceProcess):
    """`liftoff serve --no-migrate` on its own port."""

    def __init__(self, name: str, env: Mapping[str, str], *, port: int | None = None) -> None:
        self.port = port if port is not None else free_port()
        super().__init__(
            name,
            [LIFTOFF, "serve", "--no-migrate", "--host", "127.0.0.1", "--port", str(self.port)],
            env,
        )

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def graphql_url(self) -> str:
        return f"{self.http_url}/graphql"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/graphql"

    def healthy(self) -> bool:
        """Whether GET /healthz answers 200."""
        try:
            with urllib.request.urlopen(f"{self.http_url}/healthz", timeout=1) as response:
                return bool(response.status == 200)
        except (OSError, urllib.error.URLError):
            return False

    def wait_ready(self, timeout: float = 90.0) -> ApiProcess:
        self.wait_for(self.healthy, timeout=timeout, what="healthy /healthz")
        return self


class WorkerProcess(ServiceProcess):
    """`liftoff worker`: relays the outbox to Redis."""

    READY_LINE = "Worker running"

    def __init__(self, name: str, env: Mapping[str, str]) -> None:
        super().__init__(name, [LIFTOFF, "worker"], env)

    def wait_ready(self, timeout: float = 90.0) -> WorkerProcess:
        self.wait_for(
            lambda: self.READY_LINE in self.log(tail=1_000_000), timeout=timeout, what="start"
        )
        return self


@contextlib.contextmanager
def running(processes: list[ServiceProcess]) -> Iterator[list[ServiceProcess]]:
    """Start the processes and wait until each is ready; stop every one in the list after,
    also those appended to it meanwhile."""
    try:
        for process in processes:
            process.spawn()
        for process in processes:
            process.wait_ready()
        yield processes
    finally:
        for process in processes:
            with contextlib.suppress(Exception):
                process.stop()


@contextlib.contextmanager
def single_api(name: str, *, database_url: str, secret_key: str) -> Iterator[ApiProcess]:
    """One healthy `liftoff serve` without Redis (it relays its own events); stopped after."""
    server = ApiProcess(
        name, child_env(database_url=database_url, redis_url=None, secret_key=secret_key)
    )
    server.spawn()
    try:
        yield server.wait_ready(timeout=60)
    finally:
        server.stop()
