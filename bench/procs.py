"""Subprocesses of a benchmark (`liftoff serve`, `liftoff worker`, uvicorn), its event loop, and
the guarded `main` that removes every process and the throwaway database at the end."""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

from bench.db import create_database, drop_database

ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` on uvloop (as uvicorn does). Where SIGTERM has a Python handler (the bench's
    `guarded_main`), SIGTERM, like Ctrl-C, becomes KeyboardInterrupt once `coro` has been
    cancelled, so its own clean-up runs first; ignored (cleaning up) or default (a client
    process) SIGTERM is left as it is."""
    try:
        from uvloop import run as loop_run
    except ImportError:  # pragma: no cover - uvloop ships with uvicorn[standard]
        loop_run = asyncio.run  # type: ignore[assignment]

    async def guarded() -> T:
        previous = signal.getsignal(signal.SIGTERM)
        if not callable(previous):
            return await coro
        task, loop, hit = asyncio.current_task(), asyncio.get_running_loop(), []
        assert task is not None

        def stop() -> None:
            hit.append(True)
            task.cancel()

        loop.add_signal_handler(signal.SIGTERM, stop)
        try:
            return await coro
        except asyncio.CancelledError:
            if hit:
                raise KeyboardInterrupt from None
            raise
        finally:
            loop.remove_signal_handler(signal.SIGTERM)
            signal.signal(signal.SIGTERM, previous)

    return loop_run(guarded())


def raise_fd_limit(wanted: int = 65_536) -> int:
    """Raise this process's open-files limit as far as allowed; return the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def liftoff_argv(*args: str) -> list[str]:
    """The `liftoff` command of this virtualenv with `args`."""
    script = Path(sys.executable).parent / "liftoff"
    head = (
        [str(script)]
        if script.exists()
        else [sys.executable, "-c", "import app.cli as c; c.main()"]
    )
    return [*head, *args]


def serve_argv(port: int) -> list[str]:
    """`liftoff serve` on 127.0.0.1:`port` (log level from LIFTOFF_LOG_LEVEL)."""
    return liftoff_argv("serve", "--no-migrate", "--host", "127.0.0.1", "--port", str(port))


BENCH_BUDGET = "1000000/minute"
BENCH_LIMITS = {
    **{
        f"LIFTOFF_RATE_{name}": BENCH_BUDGET
        for name in (
            "PER_ADDRESS",
            "PER_ORGANIZATION",
            "READS",
            "WRITES",
            "SIGN_INS",
            "INGEST",
            "SUBSCRIBES",
            "WS_CONNECTS",
        )
    },
    "LIFTOFF_WS_MAX_PER_SUBJECT": "100000",
    "LIFTOFF_WS_MAX_PER_ORGANIZATION": "100000",
}
"""The rate budgets and websocket caps of every benchmarked Liftoff process (the documented
`LIFTOFF_RATE_*` / `LIFTOFF_WS_MAX_*` settings). A load generator sends thousands of requests a
minute from one address as a handful of subjects: with the production budgets (1,200/minute
per address) almost every request would be refused with RATE_LIMITED. The limiter still runs
and counts every request, so its cost stays in the figures; only the budgets are out of reach.
`bench.abuse` measures the refusals themselves. A bench may pass its own values in `extra`."""


def app_env(db_url: str, secret: str, log_level: str = "WARNING", **extra: str) -> dict[str, str]:
    """This process's environment for a Liftoff process on the bench database, with the
    benchmark budgets of `BENCH_LIMITS` unless `extra` says otherwise."""
    env = {k: v for k, v in os.environ.items() if k != "LIFTOFF_DATABASE_URL"}
    env.update(BENCH_LIMITS)
    env.update(
        DATABASE_URL=db_url,
        LIFTOFF_SECRET_KEY=secret,
        LIFTOFF_LOG_LEVEL=log_level.upper(),
        PYTHONUNBUFFERED="1",
        **extra,
    )
    return env


async def production_env(
    teardown: Teardown, db_url: str, secret: str, label: str, **extra: str
) -> tuple[Any, dict[str, str]]:
    """Start a Valkey for the run and a data folder (both removed at the end); the Valkey and
    the environment of Liftoff processes that use it with a separate worker, as in production."""
    import shutil

    from tests.support.valkey import ValkeyProcess

    valkey = ValkeyProcess()
    teardown.add(valkey.stop)
    await asyncio.to_thread(valkey.start)
    data_dir = tempfile.mkdtemp(prefix=f"bench-{label}-data-")
    teardown.add(lambda: shutil.rmtree(data_dir, ignore_errors=True))
    env = app_env(
        db_url,
        secret,
        REDIS_URL=valkey.url,
        LIFTOFF_INLINE_WORKER="false",
        LIFTOFF_DATA_DIR=data_dir,
        **extra,
    )
    return valkey, env


class Child:
    """One subprocess in its own session, logging to a temp file; `port` when it serves HTTP."""

    def __init__(
        self, name: str, argv: list[str], env: dict[str, str], port: int | None = None
    ) -> None:
        self.name, self.argv, self.env, self.port = name, argv, env, port
        self.log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - kept open for the process
            prefix=f"bench-{name}-", suffix=".log", delete=False
        )
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Child:
        self.proc = subprocess.Popen(
            self.argv,
            cwd=ROOT,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C reaches the bench only; it stops us in order
        )
        return self

    def tail(self, lines: int = 30) -> str:
        self.log.flush()
        text = Path(self.log.name).read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def check(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.tail()}")

    async def wait_for_log(self, text: str, within: float = 60.0) -> None:
        """Until `text` appears in the process's output."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            self.check()
            if text in await asyncio.to_thread(Path(self.log.name).read_text, errors="replace"):
                return
            await asyncio.sleep(0.2)
        raise RuntimeError(f"{self.name}: no {text!r} after {within:.0f} s:\n{self.tail()}")

    async def wait_ready(self, path: str = "/healthz", within: float = 60.0) -> None:
        """Until GET `path` answers 200."""
        import httpx  # here, not at import: fan-out client processes import this module too

        deadline = time.monotonic() + within
        async with httpx.AsyncClient(base_url=self.url, timeout=2.0, trust_env=False) as client:
            while time.monotonic() < deadline:
                self.check()
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(path)).status_code == 200:
                        return
                await asyncio.sleep(0.2)
        raise RuntimeError(f"{self.name} not ready after {within:.0f} s:\n{self.tail()}")

    def stop(self) -> None:
        """Terminate (kill after 15 s) and remove the log; safe to call again."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.proc = None
        if not self.log.closed:
            self.log.close()
            Path(self.log.name).unlink(missing_ok=True)


class Teardown:
    """A run's throwaway database and what else to undo at the end (last added, first undone)."""

    def __init__(self, server_url: str) -> None:
        self.server_url = server_url
        self.db_name = f"liftoff_bench_{uuid.uuid4().hex[:10]}"
        self.cleanups: list[Callable[[], None]] = []
        self._attempted = self._created = False

    def add(self, cleanup: Callable[[], None]) -> None:
        self.cleanups.append(cleanup)

    async def create_database(self) -> tuple[str, str]:
        """Create the throwaway database; its URL and the server version."""
        self._attempted = True  # from here on it may exist: always try to drop it
        url, version = await create_database(self.server_url, self.db_name)
        self._created = True
        return url, version

    def close(self) -> None:
        for cleanup in reversed(self.cleanups):
            try:
                cleanup()
            except Exception as exc:
                print(f"cleanup {cleanup!r} failed: {exc}", file=sys.stderr)
        self.cleanups = []
        if self._attempted:
            try:
                run(drop_database(self.server_url, self.db_name))
            except Exception as exc:
                if self._created:
                    print(f"could not drop database {self.db_name}: {exc}", file=sys.stderr)


def _interrupted(*_: object) -> None:
    raise KeyboardInterrupt


def guarded_main(server_url: str, body: Callable[[Teardown], int]) -> int:
    """`body(teardown)`'s exit code (130 on Ctrl-C or SIGTERM, 1 on an error); then, with both
    signals ignored, the teardown: cleanups, subprocesses and the database."""
    teardown = Teardown(server_url)
    signal.signal(signal.SIGTERM, _interrupted)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started in background
    try:
        return body(teardown)
    except KeyboardInterrupt:
        print("\ninterrupted; cleaning up", file=sys.stderr)
        return 130
    except Exception as exc:
        print(f"\nbench failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        teardown.close()
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
