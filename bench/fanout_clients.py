"""The client side of `bench.fanout`: processes holding websocket subscribers, and the pool the
bench drives them through (a pipe per process: status, reset, collect, close)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
import signal
import time
from array import array
from datetime import datetime
from multiprocessing.connection import Connection
from typing import Any

from bench.metrics import cpu_or_zero
from bench.procs import raise_fd_limit, run

PROTOCOL = "graphql-transport-ws"

Spec = tuple[str, str, dict[str, Any] | None]
"""(bearer token, subscription document, variables) of one subscriber."""


class Subscribers:
    """Runs inside one client process: its share of the websocket subscribers."""

    def __init__(self, url: str, specs: list[Spec], compression: bool, concurrency: int) -> None:
        self.url, self.specs = url, specs
        self.compression = compression
        self.counts = [0] * len(specs)
        self.ids = array("q")
        self.occurred = array("d")
        self.received = array("d")
        self.connected = 0
        self.failed = 0
        self.dropped = 0
        self.errors = 0
        self.first_error: str | None = None
        self.tasks: list[asyncio.Task[None]] = []
        self.gate = asyncio.Semaphore(concurrency)

    def _error(self, text: str) -> None:
        self.errors += 1
        self.first_error = self.first_error or text[:500]

    async def main(self, conn: Connection) -> None:
        self.tasks = [
            asyncio.create_task(self.subscriber(i, spec, self.gate))
            for i, spec in enumerate(self.specs)
        ]
        try:
            while True:
                try:
                    command, *args = await asyncio.to_thread(conn.recv)
                except (EOFError, OSError):
                    return  # the bench is gone
                if command == "close":
                    return
                conn.send(self.command(command, args))
        finally:
            for task in self.tasks:
                task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)

    def command(self, command: str, args: list[Any]) -> Any:
        if command == "status":
            silent = [i for i, c in enumerate(self.counts) if c == 0]
            return {
                "connected": self.connected,
                "failed": self.failed,
                "dropped": self.dropped,
                "errors": self.errors,
                "first_error": self.first_error,
                "received": len(self.received),
                "silent": silent,
            }
        if command == "reset":
            self.ids = array("q")
            self.occurred = array("d")
            self.received = array("d")
            return True
        if command == "collect":
            return self.ids, self.occurred, self.received
        raise ValueError(command)

    async def subscriber(self, index: int, spec: Spec, gate: asyncio.Semaphore) -> None:
        from websockets.asyncio.client import connect
        from websockets.typing import Subprotocol

        token, query, variables = spec
        loads, fromiso, now = json.loads, datetime.fromisoformat, time.time
        up = False
        try:
            async with gate:
                ws = await connect(
                    self.url,
                    subprotocols=[Subprotocol(PROTOCOL)],
                    compression="deflate" if self.compression else None,
                    proxy=None,
                    ping_interval=None,  # the server pings; the library answers
                    open_timeout=120,
                    close_timeout=1,
                )
                init = {"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}
                await ws.send(json.dumps(init))
                ack = loads(await asyncio.wait_for(ws.recv(), 120))
                if ack.get("type") != "connection_ack":
                    raise RuntimeError(f"no connection_ack: {ack}")
            payload = {"query": query, "variables": variables}
            await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
            up = True
            self.connected += 1
            counts, ids, occurred, received = self.counts, self.ids, self.occurred, self.received
            async for raw in ws:
                at = now()
                msg = loads(raw)
                kind = msg.get("type")
                if kind == "next":
                    data = msg["payload"].get("data")
                    if not data:
                        self._error(str(msg)[:500])
                        continue
                    for event in data.values():
                        if self.occurred is not occurred:  # reset by the bench
                            ids, occurred, received = self.ids, self.occurred, self.received
                        ids.append(int(event["id"]))
                        occurred.append(fromiso(event["occurredAt"]).timestamp())
                        received.append(at)
                        counts[index] += 1
                elif kind == "ping":
                    await ws.send('{"type":"pong"}')
                elif kind in ("error", "complete"):
                    self._error(f"{kind}: {str(msg)[:400]}")
                    break
            self.dropped += 1
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if up:
                self.dropped += 1
            else:
                self.failed += 1
            self._error(f"{type(exc).__name__}: {exc}")


def client_process(
    conn: Connection,
    url: str,
    specs: list[Spec],
    compression: bool,
    concurrency: int,
) -> None:
    """Entry point of a client process (multiprocessing, spawn)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the bench stops us
    raise_fd_limit()
    run(Subscribers(url, specs, compression, concurrency).main(conn))


class ClientPool:
    """The client processes of one round, and the bench's side of their pipes."""

    def __init__(self) -> None:
        self.procs: list[multiprocessing.process.BaseProcess] = []
        self.pipes: list[Connection] = []
        self.specs: list[list[Spec]] = []

    def start(
        self,
        url: str,
        specs: list[Spec],
        procs: int,
        *,
        compression: bool,
        concurrency: int,
    ) -> None:
        ctx = multiprocessing.get_context("spawn")
        for j in range(procs):
            mine = specs[j::procs]
            ours, theirs = ctx.Pipe()
            proc = ctx.Process(
                target=client_process,
                args=(theirs, url, mine, compression, concurrency),
                name=f"fanout-client-{j}",
                daemon=True,
            )
            proc.start()
            theirs.close()
            self.procs.append(proc)
            self.pipes.append(ours)
            self.specs.append(mine)

    async def ask(self, command: str, *args: Any) -> list[Any]:
        def one(pipe: Connection) -> Any:
            pipe.send((command, *args))
            return pipe.recv()

        for proc in self.procs:
            if not proc.is_alive():
                raise RuntimeError(f"{proc.name} died (exit code {proc.exitcode})")
        return list(await asyncio.gather(*(asyncio.to_thread(one, p) for p in self.pipes)))

    def global_index(self, proc: int, local: int) -> int:
        return proc + len(self.procs) * local

    def cpu(self) -> list[float]:
        return [cpu_or_zero(p.pid) for p in self.procs]

    def stop(self) -> None:
        for pipe in self.pipes:
            with contextlib.suppress(OSError, BrokenPipeError):
                pipe.send(("close",))
        deadline = time.monotonic() + 5
        for proc in self.procs:
            proc.join(timeout=max(0.1, deadline - time.monotonic()))
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=5)
        for pipe in self.pipes:
            pipe.close()
        self.procs, self.pipes, self.specs = [], [], []
