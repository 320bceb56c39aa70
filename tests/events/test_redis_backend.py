"""ResilientRedisBackend against a real server: delivery, the subscribe race, restarts, outages."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator

import pytest
from broadcaster import Broadcast, Event
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from app.events.redis_backend import PublishError, ResilientRedisBackend
from tests.support.valkey import ValkeyProcess

FAST = {
    "min_backoff": 0.02,
    "max_backoff": 0.2,
    "health_check_interval": 0.3,
    "socket_timeout": 1.0,
}


def make_backend(url: str) -> ResilientRedisBackend:
    """A backend with test-sized backoff and health-check timings."""
    return ResilientRedisBackend(url, publish_attempts=3, **FAST)


async def wait_until(predicate: Callable[[], bool], *, within: float = 5.0) -> None:
    """Poll `predicate` until it holds, failing the test after `within` seconds."""
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


def reconnect_waiter(backend: ResilientRedisBackend) -> asyncio.Event:
    """An event set by an on_reconnect hook of `backend`."""
    event = asyncio.Event()

    async def hook() -> None:
        event.set()

    backend.on_reconnect.append(hook)
    return event


@pytest.fixture
def valkey() -> Iterator[ValkeyProcess]:
    with ValkeyProcess() as server:
        yield server


@pytest.fixture
async def backend(valkey: ValkeyProcess) -> AsyncIterator[ResilientRedisBackend]:
    backend = make_backend(valkey.url)
    await backend.connect()
    yield backend
    await backend.disconnect()


@pytest.fixture
async def broadcast(backend: ResilientRedisBackend) -> AsyncIterator[Broadcast]:
    async with Broadcast(backend=backend) as broadcast:  # connect() is idempotent
        yield broadcast


@pytest.fixture
async def client(valkey: ValkeyProcess) -> AsyncIterator[Redis]:
    client = Redis.from_url(valkey.url)
    yield client
    await client.aclose()


async def wait_for_numsub(client: Redis, channel: str, expected: int) -> None:
    """Wait until the server counts `expected` subscribers on `channel`."""
    for _ in range(200):
        if await numsub(client, channel) == expected:
            return
        await asyncio.sleep(0.01)
    assert await numsub(client, channel) == expected


async def numsub(client: Redis, channel: str) -> int:
    """How many connections the server counts as subscribed to `channel`."""
    counts = dict(await client.pubsub_numsub(channel))
    return int(counts[channel.encode()])


async def test_publish_is_received_through_broadcast(valkey: ValkeyProcess) -> None:
    broadcast = Broadcast(backend=make_backend(valkey.url))
    async with broadcast, broadcast.subscribe("org:1:activity") as subscriber:
        await broadcast.publish("org:1:activity", "hello")
        await broadcast.publish("org:1:activity", "world")
        first = await asyncio.wait_for(subscriber.get(), 2)
        second = await asyncio.wait_for(subscriber.get(), 2)
    assert [first, second] == [
        Event("org:1:activity", "hello"),
        Event("org:1:activity", "world"),
    ]


async def test_publish_right_after_subscribe_is_delivered(broadcast: Broadcast) -> None:
    for i in range(50):
        channel = f"race:{i}"
        async with broadcast.subscribe(channel) as subscriber:
            await broadcast.publish(channel, f"m{i}")
            assert await asyncio.wait_for(subscriber.get(), 2) == Event(channel, f"m{i}")


async def test_subscribe_returns_only_once_the_server_acknowledged(
    backend: ResilientRedisBackend, client: Redis
) -> None:
    for i in range(50):
        channel = f"ack:{i}"
        await backend.subscribe(channel)
        assert await client.publish(channel, f"m{i}") == 1  # one subscriber got it
        assert await asyncio.wait_for(backend.next_published(), 2) == Event(channel, f"m{i}")


async def test_subscribe_waits_for_the_servers_acknowledgement(
    valkey: ValkeyProcess, client: Redis
) -> None:
    backend = ResilientRedisBackend(valkey.url, health_check_interval=5.0, min_backoff=0.02)
    await backend.connect()
    try:
        valkey.pause()  # SUBSCRIBE reaches the socket, but no acknowledgement comes back
        try:
            subscribing = asyncio.create_task(backend.subscribe("slow"))
            await asyncio.sleep(0.2)
            assert not subscribing.done()
        finally:
            valkey.resume()
        await asyncio.wait_for(subscribing, 2)
        assert await client.publish("slow", "x") == 1
        assert await asyncio.wait_for(backend.next_published(), 2) == Event("slow", "x")
    finally:
        await backend.disconnect()


async def test_subscriber_survives_a_server_restart(
    valkey: ValkeyProcess,
    backend: ResilientRedisBackend,
    broadcast: Broadcast,
    client: Redis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[str] = []

    async def failing_hook() -> None:
        calls.append("failing")
        raise RuntimeError("hook failure must not stop the others")

    backend.on_reconnect.append(failing_hook)
    reconnected = reconnect_waiter(backend)
    caplog.set_level(logging.WARNING, logger="app.events.redis_backend")
    async with broadcast.subscribe("org:1:customer:7") as subscriber:
        await broadcast.publish("org:1:customer:7", "before")
        assert await asyncio.wait_for(subscriber.get(), 2) == Event("org:1:customer:7", "before")

        await asyncio.to_thread(valkey.restart)
        await asyncio.wait_for(reconnected.wait(), 5)

        assert backend.is_connected
        assert await numsub(client, "org:1:customer:7") == 1
        await client.publish("org:1:customer:7", "after-1")
        await broadcast.publish("org:1:customer:7", "after-2")
        received = [await asyncio.wait_for(subscriber.get(), 2) for _ in range(2)]
    assert received == [Event("org:1:customer:7", "after-1"), Event("org:1:customer:7", "after-2")]
    assert calls == ["failing"]
    messages = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert (logging.WARNING, "Redis pub/sub reconnected; resubscribed to 1 channel(s)") in messages


async def test_subscriptions_made_while_down_apply_when_the_server_returns(
    valkey: ValkeyProcess, backend: ResilientRedisBackend, client: Redis
) -> None:
    await backend.subscribe("a")
    reconnected = reconnect_waiter(backend)

    await asyncio.to_thread(valkey.stop)
    await wait_until(lambda: not backend.is_connected)
    await asyncio.wait_for(backend.subscribe("b"), 1)  # does not wait for the server
    await backend.subscribe("c")
    await backend.unsubscribe("c")
    await asyncio.to_thread(valkey.start)
    await asyncio.wait_for(reconnected.wait(), 5)

    assert backend.channels == {"a", "b"}
    assert [await numsub(client, ch) for ch in ("a", "b", "c")] == [1, 1, 0]
    await client.publish("a", "1")
    await client.publish("b", "2")
    received = [await asyncio.wait_for(backend.next_published(), 2) for _ in range(2)]
    assert received == [Event("a", "1"), Event("b", "2")]


async def test_dead_socket_is_noticed_by_the_health_check(
    valkey: ValkeyProcess, backend: ResilientRedisBackend, client: Redis
) -> None:
    await backend.subscribe("a")
    reconnected = reconnect_waiter(backend)
    valkey.pause()  # the socket stays open; the server just stops answering
    try:
        await wait_until(lambda: not backend.is_connected, within=5)
    finally:
        valkey.resume()
    await asyncio.wait_for(reconnected.wait(), 5)
    await client.publish("a", "alive")
    assert await asyncio.wait_for(backend.next_published(), 2) == Event("a", "alive")


async def test_unsubscribe_stops_delivery(backend: ResilientRedisBackend, client: Redis) -> None:
    await backend.subscribe("gone")
    await backend.subscribe("kept")
    await client.publish("gone", "1")
    assert await asyncio.wait_for(backend.next_published(), 2) == Event("gone", "1")

    await backend.unsubscribe("gone")
    assert backend.channels == {"kept"}
    await client.publish("gone", "2")
    await client.publish("kept", "3")
    assert await asyncio.wait_for(backend.next_published(), 2) == Event("kept", "3")
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(backend.next_published(), 0.3)
    await wait_for_numsub(client, "gone", 0)


async def test_leaving_a_broadcast_subscription_unsubscribes(
    broadcast: Broadcast, client: Redis
) -> None:
    async with broadcast.subscribe("gone") as subscriber:
        await broadcast.publish("gone", "1")
        assert await asyncio.wait_for(subscriber.get(), 2) == Event("gone", "1")
    await wait_for_numsub(client, "gone", 0)


async def test_publish_while_down_raises_after_retrying(
    valkey: ValkeyProcess, backend: ResilientRedisBackend, client: Redis
) -> None:
    await asyncio.to_thread(valkey.stop)
    started = time.monotonic()
    with pytest.raises(PublishError, match="after 3 attempts") as caught:
        await backend.publish("a", "lost")
    assert isinstance(caught.value.__cause__, RedisConnectionError)
    assert time.monotonic() - started < 2

    await asyncio.to_thread(valkey.start)
    await backend.subscribe("a")
    await wait_until(lambda: backend.is_connected)
    await backend.publish("a", "delivered")  # no reconnect call needed
    assert await asyncio.wait_for(backend.next_published(), 2) == Event("a", "delivered")


@pytest.mark.parametrize("server_up", [True, False])
async def test_disconnect_leaves_no_tasks(valkey: ValkeyProcess, server_up: bool) -> None:
    before = asyncio.all_tasks()
    backend = make_backend(valkey.url)
    if not server_up:
        await asyncio.to_thread(valkey.stop)
    async with Broadcast(backend=backend) as broadcast:
        async with broadcast.subscribe("x"):
            pass
        await backend.subscribe("y")  # still subscribed at disconnect
        await asyncio.sleep(0.1)  # let the reader reconnect/back off a few times
    await asyncio.sleep(0)  # Broadcast.disconnect cancels its listener without awaiting it
    assert asyncio.all_tasks() - before == set()
    assert not backend.is_connected
