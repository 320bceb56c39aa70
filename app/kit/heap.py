"""Garbage-collector settings of a long-lived server process, shared by the api and the benches."""

from __future__ import annotations

import asyncio
import ctypes
import gc


def settle_heap() -> None:
    """After start-up: collect once and move what survived out of every later collection.

    The collection thresholds stay Python's defaults: raised thresholds (50,000) measured no
    CPU gain on the query path and let the heap of an aged process double.
    """
    gc.collect()
    gc.freeze()


def trim_heap() -> None:
    """Collect, then hand the memory the allocator keeps free back to the system (glibc's
    `malloc_trim`; elsewhere only the collection)."""
    gc.collect()
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        pass


class QuietTrim:
    """Trims the heap once things are quiet after a burst of releases (closed websockets):
    without it, the memory of thousands of closed sockets stays with the process."""

    def __init__(self, *, burst: int = 100, quiet_seconds: float = 2.0) -> None:
        self.burst = burst
        self.quiet_seconds = quiet_seconds
        self.released = 0
        self._timer: asyncio.TimerHandle | None = None

    def released_one(self) -> None:
        """Count one release; after `burst` of them, trim `quiet_seconds` after the last."""
        self.released += 1
        if self.released < self.burst:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_later(self.quiet_seconds, self._trim)

    def _trim(self) -> None:
        self._timer = None
        self.released = 0
        trim_heap()
