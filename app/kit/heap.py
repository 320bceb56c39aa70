"""Garbage-collector settings of a long-lived server process, shared by the api and the benches."""

from __future__ import annotations

import gc

SERVER_GC_THRESHOLD = (50_000, 20, 100)


def settle_heap() -> None:
    """After start-up: collect once, move what survived out of every later collection, and set
    the server's collection thresholds."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*SERVER_GC_THRESHOLD)
