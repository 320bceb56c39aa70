"""Rate limits with the `limits` library: counters in Redis when there is one (shared by every
process), in memory otherwise. Budgets are strings such as `600/minute`."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from functools import lru_cache

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter

log = logging.getLogger(__name__)


@lru_cache(maxsize=64)
def budget(text: str) -> RateLimitItem:
    """A parsed budget (`120/minute`, `10 per second`)."""
    return parse(text)


class Limiter:
    """Counts hits per budget and key; says how long to wait when a budget is spent."""

    def __init__(self, redis_url: str | None) -> None:
        self.storage: Storage = (
            RedisStorage(f"async+{redis_url}", implementation="redispy")
            if redis_url
            else MemoryStorage()
        )
        self.strategy = SlidingWindowCounterRateLimiter(self.storage)

    async def hit(self, text: str, *keys: str) -> float | None:
        """Count one hit; None when within budget, else seconds until the next is allowed.

        When the counters cannot be reached (Redis down) the request is let through: rate
        limits protect the service, they must not take it down.
        """
        item = budget(text)
        try:
            if await self.strategy.hit(item, *keys):
                return None
        except Exception as exc:
            log.warning("rate limit counters unavailable (%s); letting the request through", exc)
            return None
        return await self._wait(item, keys)

    async def _wait(self, item: RateLimitItem, keys: Sequence[str]) -> float | None:
        try:
            stats = await self.strategy.get_window_stats(item, *keys)
        except Exception as exc:
            log.warning("rate limit counters unavailable (%s); letting the request through", exc)
            return None
        return max(1.0, round(stats.reset_time - time.time(), 1))

    async def hit_all(self, spend: Sequence[tuple[str, Sequence[str]]]) -> tuple[int, float] | None:
        """Count one hit on each (budget, keys) of `spend`; None when every budget had room,
        else the index of the first that was spent and the seconds until it allows more.

        With Redis the hits go in one pipelined round trip (the same Lua script and keys as
        `hit`, so both count in the same windows); every budget with room is counted, also
        when another refuses. In memory, they are counted in order up to the first refusal.
        """
        if not isinstance(self.storage, RedisStorage):
            for n, (text, keys) in enumerate(spend):
                wait = await self.hit(text, *keys)
                if wait is not None:
                    return n, wait
            return None
        items = [(budget(text), keys) for text, keys in spend]
        try:
            acquired = await self._acquire_pipelined(items)
        except Exception as exc:
            log.warning("rate limit counters unavailable (%s); letting the request through", exc)
            return None
        for n, ok in enumerate(acquired):
            if not ok:
                item, keys = items[n]
                wait = await self._wait(item, keys)
                return None if wait is None else (n, wait)
        return None

    async def _acquire_pipelined(
        self, items: list[tuple[RateLimitItem, Sequence[str]]]
    ) -> list[bool]:
        """`SlidingWindowCounterRateLimiter.hit` of every item, as one Redis pipeline."""
        storage = self.storage
        assert isinstance(storage, RedisStorage)
        bridge = storage.bridge
        script = bridge.lua_acquire_sliding_window  # type: ignore[attr-defined]
        async with bridge.get_connection().pipeline(transaction=False) as pipe:  # type: ignore[attr-defined]
            for item, keys in items:
                key = item.key_for(*keys)
                window = [
                    bridge.prefixed_key(storage._previous_window_key(key)),
                    bridge.prefixed_key(storage._current_window_key(key)),
                ]
                await script(window, [item.amount, item.get_expiry(), 1], client=pipe)
            return [bool(r) for r in await pipe.execute()]
