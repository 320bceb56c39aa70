"""Rate limits with the `limits` library: counters in Redis when there is one (shared by every
process), in memory otherwise. Budgets are strings such as `600/minute`.

With Redis, a process may take a small share of a budget at once and spend it locally
(`local_share`): the counters count the share's hits when it is taken, and the process asks
Redis again only when its share is spent or has aged. See `Limiter.hit_all` for the tolerance.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from redis.exceptions import NoScriptError

log = logging.getLogger(__name__)

SHARE_AGE = 0.5
"""A local share is spent within this fraction of its budget's window, or dropped."""
MAX_SHARES = 10_000
"""Local shares kept per process (one per budget and key in use)."""

_LEASE = """-- limits' acquire_sliding_window.lua (same keys and windows), except that it grants
-- up to ARGV[3] hits, as many as the budget has room for, and returns how many (0: none).
local limit = tonumber(ARGV[1])
local expiry = tonumber(ARGV[2]) * 1000
local want = tonumber(ARGV[3])
local current_ttl = tonumber(redis.call('pttl', KEYS[2]))
if current_ttl > 0 and current_ttl < expiry then
    redis.call('rename', KEYS[2], KEYS[1])
    redis.call('set', KEYS[2], 0, 'PX', current_ttl + expiry)
end
local previous_count = tonumber(redis.call('get', KEYS[1])) or 0
local previous_ttl = tonumber(redis.call('pttl', KEYS[1])) or 0
local current_count = tonumber(redis.call('get', KEYS[2])) or 0
current_ttl = tonumber(redis.call('pttl', KEYS[2])) or 0
if previous_ttl <= 0 then previous_ttl = 0 end
if current_ttl <= 0 then current_ttl = 0 end
local weighted_count = math.floor(previous_count * previous_ttl / expiry) + current_count
local granted = math.min(want, limit - weighted_count)
if granted < 1 then
    return 0
end
if redis.call('exists', KEYS[2]) == 1 then
    redis.call('incrby', KEYS[2], granted)
else
    redis.call('set', KEYS[2], granted, 'PX', expiry * 2)
end
return granted
"""
_LEASE_SHA = hashlib.sha1(_LEASE.encode()).hexdigest()


@lru_cache(maxsize=64)
def budget(text: str) -> RateLimitItem:
    """A parsed budget (`120/minute`, `10 per second`)."""
    return parse(text)


def share_size(amount: int, fraction: float) -> int:
    """Hits a process takes from a budget of `amount` at once: `fraction` of it, at least 1
    (1: every hit is counted in Redis as it happens)."""
    return max(1, int(amount * fraction))


@dataclass(slots=True)
class _Share:
    left: int
    until: float


class Limiter:
    """Counts hits per budget and key; says how long to wait when a budget is spent."""

    def __init__(self, redis_url: str | None, *, local_share: float = 0.0) -> None:
        self.storage: Storage = (
            RedisStorage(f"async+{redis_url}", implementation="redispy")
            if redis_url
            else MemoryStorage()
        )
        self.strategy = SlidingWindowCounterRateLimiter(self.storage)
        self.local_share = local_share
        self.shares: dict[tuple[str, tuple[str, ...]], _Share] = {}
        self.pending: set[tuple[str, tuple[str, ...]]] = set()

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

        With Redis, a hit is taken from this process's share of the budget when it has one;
        the budgets without go to Redis in one round trip (the same windows and keys as
        `hit`), each asking for a new share of `local_share` of the budget (at least the one
        hit, fewer when the budget has less room). Every budget with room is counted, also
        when another refuses. The counters count a share when it is taken, so with P
        processes a key may be refused up to P shares early (taken, not yet spent), and up
        to P shares more than the budget may pass in one window (taken just before it, spent
        in it); an unspent share is dropped after `SHARE_AGE` of its window. Budgets under
        2 / `local_share` per window are counted hit by hit, exactly; while a share of a key
        is being taken, other hits on it are counted alone, so a process asks for one share of
        a key at a time. In memory, budgets are
        counted in order up to the first refusal.
        """
        if not isinstance(self.storage, RedisStorage):
            for n, (text, keys) in enumerate(spend):
                wait = await self.hit(text, *keys)
                if wait is not None:
                    return n, wait
            return None
        now = time.monotonic()
        remote: list[tuple[int, RateLimitItem, tuple[str, ...], str, int]] = []
        for n, (text, keys) in enumerate(spend):
            share = self.shares.get((text, tuple(keys)))
            if share is not None and share.left > 0 and share.until > now:
                share.left -= 1
                continue
            item = budget(text)
            want = share_size(item.amount, self.local_share)
            if want > 1 and (text, tuple(keys)) in self.pending:
                want = 1  # a share of it is on its way: count this hit alone
            remote.append((n, item, tuple(keys), text, want))
        if not remote:
            return None
        taking = [(text, keys) for _, _, keys, text, want in remote if want > 1]
        self.pending.update(taking)
        try:
            granted = await self._lease([(item, keys, want) for _, item, keys, _, want in remote])
        except Exception as exc:
            log.warning("rate limit counters unavailable (%s); letting the request through", exc)
            return None
        finally:
            self.pending.difference_update(taking)
        refused: tuple[int, RateLimitItem, tuple[str, ...]] | None = None
        for (n, item, keys, text, want), got in zip(remote, granted, strict=True):
            if got < 1:
                refused = refused or (n, item, keys)
            elif want > 1:
                self._keep((text, keys), got - 1, time.monotonic() + item.get_expiry() * SHARE_AGE)
        if refused is None:
            return None
        n, item, keys = refused
        wait = await self._wait(item, keys)
        return None if wait is None else (n, wait)

    def _keep(self, key: tuple[str, tuple[str, ...]], left: int, until: float) -> None:
        if len(self.shares) >= MAX_SHARES and key not in self.shares:
            now = time.monotonic()
            self.shares = {k: s for k, s in self.shares.items() if s.until > now and s.left}
            if len(self.shares) >= MAX_SHARES:
                self.shares.clear()
        self.shares[key] = _Share(left, until)

    async def _lease(self, items: list[tuple[RateLimitItem, Sequence[str], int]]) -> list[int]:
        """Take up to `want` hits of each item's budget, in one Redis round trip; how many
        each got. The script runs by its digest (loaded once when Redis does not know it)."""
        storage = self.storage
        assert isinstance(storage, RedisStorage)
        bridge = storage.bridge
        client = bridge.get_connection()  # type: ignore[attr-defined]
        for attempt in (1, 2):
            async with client.pipeline(transaction=False) as pipe:
                for item, keys, want in items:
                    key = item.key_for(*keys)
                    pipe.execute_command(
                        "EVALSHA",
                        _LEASE_SHA,
                        2,
                        bridge.prefixed_key(storage._previous_window_key(key)),
                        bridge.prefixed_key(storage._current_window_key(key)),
                        item.amount,
                        item.get_expiry(),
                        want,
                    )
                try:
                    return [int(r) for r in await pipe.execute()]
                except NoScriptError:
                    if attempt == 2:
                        raise
            await client.script_load(_LEASE)
        raise AssertionError("unreachable")
