"""Duration histograms with fixed buckets, so percentiles come from sums, not raw rows."""

from __future__ import annotations

import bisect
import math
import operator
from collections.abc import Sequence

_M, _H, _D = 60, 3600, 86400
BOUNDS: tuple[int, ...] = (
    0, 5 * _M, 15 * _M, 30 * _M, _H, 2 * _H, 4 * _H, 8 * _H, 12 * _H,
    _D, 2 * _D, 3 * _D, 4 * _D, 5 * _D, 6 * _D, 7 * _D, 10 * _D, 14 * _D, 21 * _D, 28 * _D,
    35 * _D, 45 * _D, 60 * _D, 75 * _D, 90 * _D, 120 * _D, 180 * _D, 270 * _D, 365 * _D,
)  # fmt: skip
"""Bucket i holds durations in (BOUNDS[i], BOUNDS[i+1]] seconds (bucket 0 also holds 0);
the last bucket holds everything longer than a year."""
BUCKETS = len(BOUNDS)
WEEKS = 14
"""Completion-week offsets kept per signup cohort: 0..12 weeks after signup, then 13+."""


def bucket_of(seconds: float) -> int:
    """The bucket a duration falls in."""
    if seconds <= 0:
        return 0
    return min(bisect.bisect_left(BOUNDS, seconds) - 1, BUCKETS - 1)


def one_hot(index: int, size: int) -> list[int]:
    """A histogram with a single count."""
    out = [0] * size
    out[index] = 1
    return out


def quantile(counts: Sequence[int], q: float) -> float | None:
    """The nearest-rank q-quantile in seconds, interpolated linearly inside its bucket.

    A duration equal to a bucket bound is returned exactly; the last (open) bucket
    answers with its lower bound.
    """
    total = sum(counts)
    if total == 0:
        return None
    rank = max(1, math.ceil(q * total - 1e-9))
    seen = 0
    for i, count in enumerate(counts):
        if count and seen + count >= rank:
            low = BOUNDS[i]
            if i + 1 >= BUCKETS:
                return float(low)
            high = BOUNDS[i + 1]
            return low + (high - low) * (rank - seen) / count
        seen += count
    return float(BOUNDS[-1])


def add(into: list[int], other: Sequence[int]) -> None:
    """Add `other` to `into`, element by element (the shorter one decides how many)."""
    into[: len(other)] = map(operator.add, into, other)
