"""A broadcaster backend on redis.asyncio that reconnects and resubscribes by itself."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn

from broadcaster import Event
from broadcaster._backends.base import BroadcastBackend
from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

log = logging.getLogger(__name__)

ReconnectHook = Callable[[], Awaitable[None]]
_CONNECTION_ERRORS = (RedisConnectionError, RedisTimeoutError, OSError)


class PublishError(RuntimeError):
    """Raised when a message could not be published to Redis (after retrying)."""


class ResilientRedisBackend(BroadcastBackend):
    """Redis pub/sub for `Broadcast(backend=...)` that survives dropped connections."""

    def __init__(
        self,
        url: str,
        *,
        min_backoff: float = 0.1,
        max_backoff: float = 10.0,
        health_check_interval: float = 10.0,
        socket_timeout: float = 5.0,
        publish_attempts: int = 3,
    ) -> None:
        if publish_attempts < 1 or health_check_interval <= 0 or min_backoff <= 0:
            raise ValueError("publish_attempts, health_check_interval and min_backoff must be > 0")
        self.on_reconnect: list[ReconnectHook] = []
        self._min_backoff = min_backoff
        self._max_backoff = max(max_backoff, min_backoff)
        self._health_check_interval = health_check_interval
        self._publish_attempts = publish_attempts
        # One client for PUBLISH (redis-py's own retries off: we retry ourselves) and as the
        # factory of the dedicated pub/sub connection, which we own and never pool.
        self._client = Redis.from_url(
            url,
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_timeout,
            socket_keepalive=True,
            retry=Retry(NoBackoff(), 0),
        )
        self._channels: set[str] = set()
        self._acks: dict[str, list[asyncio.Future[None]]] = {}
        self._queue: asyncio.Queue[Event] = asyncio.Queue()
        self._write_lock = asyncio.Lock()
        self._conn: AbstractConnection | None = None
        self._connected = False
        self._failures = 0
        self._first_attempt = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None
        self._hook_tasks: set[asyncio.Task[None]] = set()

    @property
    def is_connected(self) -> bool:
        """Whether the pub/sub connection is up and every channel is resubscribed."""
        return self._connected

    @property
    def channels(self) -> frozenset[str]:
        """The channels this backend keeps subscribed."""
        return frozenset(self._channels)

    async def connect(self) -> None:
        """Start the reader; return after the first connection attempt, successful or not."""
        if self._reader is not None:
            return
        self._first_attempt.clear()
        self._reader = asyncio.create_task(self._run(), name="redis-pubsub-reader")
        await self._first_attempt.wait()

    async def disconnect(self) -> None:
        """Stop the reader and hooks, close the connections, release waiting subscribers."""
        tasks = [t for t in (self._reader, *self._hook_tasks) if t is not None]
        self._reader = None
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._release_acks()
        await self._client.aclose()

    async def subscribe(self, channel: str) -> None:
        """Subscribe; when connected, return only once Redis has acknowledged it."""
        self._channels.add(channel)
        conn = self._conn
        if conn is None:
            return  # the reader subscribes to every channel when it (re)connects
        ack: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._acks.setdefault(channel, []).append(ack)
        try:
            await self._send(conn, "SUBSCRIBE", channel)
        except (RedisError, OSError):
            return  # connection lost: the reader resubscribes on reconnect
        await ack  # resolved by the reader's ack, or released when the connection drops

    async def unsubscribe(self, channel: str) -> None:
        """Forget the channel and unsubscribe from it if connected."""
        self._channels.discard(channel)
        conn = self._conn
        if conn is not None:
            with contextlib.suppress(RedisError, OSError):
                await self._send(conn, "UNSUBSCRIBE", channel)

    async def publish(self, channel: str, message: Any) -> None:
        """Publish, retrying connection errors; raise PublishError if Redis stays unreachable."""
        for attempt in range(1, self._publish_attempts + 1):
            try:
                await self._client.publish(channel, message)
                return
            except _CONNECTION_ERRORS as exc:
                if attempt == self._publish_attempts:
                    raise PublishError(
                        f"could not publish to {channel!r} after {attempt} attempts: {exc}"
                    ) from exc
                await asyncio.sleep(self._backoff(attempt))
            except RedisError as exc:
                raise PublishError(f"could not publish to {channel!r}: {exc}") from exc

    async def next_published(self) -> Event:
        """Wait for the next message on a subscribed channel."""
        return await self._queue.get()

    async def _run(self) -> None:
        """Keep one subscribed pub/sub connection alive until cancelled."""
        while True:
            pool = self._client.connection_pool
            conn = pool.connection_class(**pool.connection_kwargs)  # ours alone, never pooled
            error: BaseException
            try:
                await conn.connect()  # type: ignore[no-untyped-call]
                await self._serve(conn)
            except (RedisError, OSError) as exc:
                error = exc
            except Exception as exc:
                log.exception("unexpected error in the Redis pub/sub reader")
                error = exc
            finally:
                await self._drop(conn)
            self._failures += 1
            self._first_attempt.set()
            delay = self._backoff(self._failures)
            log.warning("Redis pub/sub unavailable (%r); reconnecting in %.2fs", error, delay)
            await asyncio.sleep(delay)

    async def _serve(self, conn: AbstractConnection) -> NoReturn:
        """Resubscribe on a fresh connection, then read and health-check it until it fails."""
        self._conn = conn
        pending = set(self._channels)
        if pending:
            await self._send(conn, "SUBSCRIBE", *sorted(pending))
        else:
            self._mark_up(0)
        awaiting_pong = False
        while True:
            reply = await conn.read_response(
                timeout=self._health_check_interval, disconnect_on_error=False, push_request=True
            )
            if reply is None:  # nothing for a whole interval: PING, and give up if still silent
                if awaiting_pong:
                    raise RedisTimeoutError("no reply to the health-check PING")
                await self._send(conn, "PING")
                awaiting_pong = True
                continue
            awaiting_pong = False
            if not isinstance(reply, list) or len(reply) < 3:
                continue  # PONG and other replies only prove the connection is alive
            kind, channel = _text(reply[0]), _text(reply[1])
            if kind == "message" and channel in self._channels:
                self._queue.put_nowait(Event(channel=channel, message=_text(reply[2])))
            elif kind == "subscribe":
                for ack in self._acks.pop(channel, []):
                    if not ack.done():
                        ack.set_result(None)
                if channel in pending:
                    pending.discard(channel)
                    if not pending:
                        self._mark_up(len(self._channels))

    async def _send(self, conn: AbstractConnection, *args: str) -> None:
        """Write a command on the pub/sub connection, never reopening a dropped one."""
        async with self._write_lock:
            if self._conn is not conn or not conn.is_connected:
                raise RedisConnectionError("the pub/sub connection is closed")
            await conn.send_command(*args, check_health=False)

    def _mark_up(self, resubscribed: int) -> None:
        """Record a usable connection; after an outage, log it and run the hooks."""
        self._connected = True
        self._first_attempt.set()
        if self._failures:
            log.warning("Redis pub/sub reconnected; resubscribed to %d channel(s)", resubscribed)
            task = asyncio.create_task(self._run_hooks(), name="redis-pubsub-on-reconnect")
            self._hook_tasks.add(task)
            task.add_done_callback(self._hook_tasks.discard)
        self._failures = 0

    async def _run_hooks(self) -> None:
        """Await each on_reconnect hook in turn, logging failures."""
        for hook in list(self.on_reconnect):
            try:
                await hook()
            except Exception:
                log.exception("on_reconnect hook %r failed", hook)

    async def _drop(self, conn: AbstractConnection) -> None:
        """Forget a dead connection, release waiting subscribers and close it."""
        if self._conn is conn:
            self._conn = None
        self._connected = False
        self._release_acks()
        await conn.disconnect(nowait=True)

    def _release_acks(self) -> None:
        """Wake every subscribe() still waiting for an acknowledgement."""
        for acks in self._acks.values():
            for ack in acks:
                if not ack.done():
                    ack.set_result(None)
        self._acks.clear()

    def _backoff(self, attempt: int) -> float:
        """Capped exponential backoff with jitter (between half and all of the cap)."""
        cap = min(self._max_backoff, self._min_backoff * 2 ** min(attempt - 1, 30))
        return random.uniform(cap / 2, cap)


def _text(value: object) -> str:
    """Decode a reply element to str."""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)
