"""Rate limits with the `limits` library: counters in Redis when there is one (shared by every
process), in memory otherwise. Budgets are strings such as `600/minute`."""

from __future__ import annotations

import logging
import time
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
            stats = await self.strategy.get_window_stats(item, *keys)
        except Exception as exc:
            log.warning("rate limit counters unavailable (%s); letting the request through", exc)
            return None
        return max(1.0, round(stats.reset_time - time.time(), 1))
