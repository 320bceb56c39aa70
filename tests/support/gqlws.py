"""A small, real graphql-transport-ws client on the `websockets` package, for end-to-end tests.

One reader task per connection sorts incoming messages: `next` / `error` / `complete` go to a
queue per operation id, `ping` is answered with `pong` at once, `pong` wakes `ping()`. When the
socket closes, every waiting and later `receive` raises `Closed` with the close code.

    client = await GqlWsClient.connect(url, token=token)
    await client.subscribe("1", "subscription { activity { sequence } }")
    message = await client.receive("1", within=5)   # {"type": "next", "payload": {...}}
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

PROTOCOL = Subprotocol("graphql-transport-ws")


class Closed(Exception):
    """The server closed the socket (or it dropped)."""

    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(f"websocket closed: {code} {reason}")
        self.code = code
        self.reason = reason


class GqlWsClient:
    """One graphql-transport-ws connection."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.pings_received = 0
        self.pongs_received = 0
        self.unexpected: list[dict[str, Any]] = []
        self._queues: dict[str, asyncio.Queue[dict[str, Any] | None]] = {}
        self._ack: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pong = asyncio.Event()
        self._closed = asyncio.Event()
        self._reader = asyncio.create_task(self._read(), name="gqlws-reader")

    @classmethod
    async def open(
        cls, url: str, *, subprotocols: tuple[str, ...] = (PROTOCOL,), within: float = 5.0
    ) -> GqlWsClient:
        """Open the socket without sending connection_init."""
        ws = await connect(
            url,
            subprotocols=[Subprotocol(p) for p in subprotocols],
            open_timeout=within,
            ping_interval=None,  # the server's keepalive is what we observe
            max_size=2**22,
        )
        return cls(ws)

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        token: str | None = None,
        payload: dict[str, Any] | None = None,
        within: float = 5.0,
    ) -> GqlWsClient:
        """Open, send connection_init with `Authorization: Bearer <token>`, wait for the ack."""
        client = await cls.open(url, within=within)
        try:
            init = payload if payload is not None else {}
            if token is not None:
                init = {"Authorization": f"Bearer {token}", **init}
            await client.init(init, within=within)
        except BaseException:
            await client.close()
            raise
        return client

    @property
    def subprotocol(self) -> str | None:
        return self.ws.subprotocol

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    @property
    def close_code(self) -> int | None:
        return self.ws.close_code

    @property
    def close_reason(self) -> str:
        return self.ws.close_reason or ""

    async def init(self, payload: dict[str, Any], *, within: float = 5.0) -> dict[str, Any]:
        """Send connection_init and return the connection_ack message; Closed if refused."""
        await self._send({"type": "connection_init", "payload": payload})
        waiter = asyncio.ensure_future(self._closed.wait())
        try:
            done, _ = await asyncio.wait(
                {self._ack, waiter}, timeout=within, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            waiter.cancel()
        if self._ack in done:
            return self._ack.result()
        if self.closed:
            raise Closed(self.close_code, self.close_reason)
        raise TimeoutError(f"no connection_ack within {within}s")

    async def subscribe(self, id: str, query: str, variables: dict[str, Any] | None = None) -> None:
        """Start an operation; its messages are read with `receive(id)`."""
        self._queues.setdefault(id, asyncio.Queue())
        payload: dict[str, Any] = {"query": query}
        if variables is not None:
            payload["variables"] = variables
        await self._send({"id": id, "type": "subscribe", "payload": payload})

    async def complete(self, id: str) -> None:
        """Stop an operation."""
        await self._send({"id": id, "type": "complete"})

    async def receive(self, id: str, *, within: float = 5.0) -> dict[str, Any]:
        """The next `next`, `error` or `complete` message of operation `id`.

        Raises TimeoutError when none comes in time, Closed when the socket is closed.
        """
        queue = self._queues.setdefault(id, asyncio.Queue())
        if queue.empty() and self.closed:
            raise Closed(self.close_code, self.close_reason)
        message = await asyncio.wait_for(queue.get(), within)
        if message is None:
            queue.put_nowait(None)  # keep telling later callers
            raise Closed(self.close_code, self.close_reason)
        return message

    async def next_data(self, id: str, *, within: float = 5.0) -> dict[str, Any]:
        """The `data` of the next `next` message of `id`; AssertionError on anything else."""
        message = await self.receive(id, within=within)
        assert message["type"] == "next", message
        assert not message["payload"].get("errors"), message
        data: dict[str, Any] = message["payload"]["data"]
        return data

    def pending(self, id: str) -> int:
        """How many messages of `id` are received and not yet read."""
        queue = self._queues.get(id)
        return queue.qsize() if queue is not None else 0

    async def ping(self, *, within: float = 5.0) -> None:
        """Send a protocol ping and wait for the pong."""
        self._pong.clear()
        await self._send({"type": "ping"})
        await asyncio.wait_for(self._pong.wait(), within)

    async def wait_closed(self, *, within: float = 5.0) -> tuple[int | None, str]:
        """Wait until the server closes the socket; return (code, reason)."""
        await asyncio.wait_for(self._closed.wait(), within)
        return self.close_code, self.close_reason

    async def close(self) -> None:
        """Close our side and stop the reader."""
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ws.close(), 5)
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._reader

    async def __aenter__(self) -> GqlWsClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _send(self, message: dict[str, Any]) -> None:
        try:
            await self.ws.send(json.dumps(message))
        except ConnectionClosed as exc:
            raise Closed(self.close_code, self.close_reason) from exc

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                message = json.loads(raw)
                kind = message.get("type")
                if kind == "ping":
                    self.pings_received += 1
                    with contextlib.suppress(ConnectionClosed):
                        await self.ws.send(json.dumps({"type": "pong"}))
                elif kind == "pong":
                    self.pongs_received += 1
                    self._pong.set()
                elif kind == "connection_ack":
                    if not self._ack.done():
                        self._ack.set_result(message)
                elif kind in ("next", "error", "complete"):
                    self._queues.setdefault(message["id"], asyncio.Queue()).put_nowait(message)
                else:
                    self.unexpected.append(message)
        except ConnectionClosed:
            pass
        finally:
            self._closed.set()
            for queue in self._queues.values():
                queue.put_nowait(None)
