"""Readings from /proc (CPU seconds, resident memory) and latency percentiles."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def proc_cpu(pid: int | str | None, *, system_only: bool = False) -> float | None:
    """User+system (or only system) CPU seconds of a process (None when unreadable)."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[12]) + (0 if system_only else int(fields[11]))) / _TICK


def cpu_or_zero(pid: int | str | None, *, system_only: bool = False) -> float:
    """`proc_cpu`, 0 when unreadable (a process that is gone adds nothing)."""
    return proc_cpu(pid, system_only=system_only) or 0.0


def postgres_processes(database: str | None = None) -> Iterator[tuple[str, bytes]]:
    """(pid, command line with spaces for NULs) of the local processes named `postgres`, only
    the backends serving `database` when given (its command line is read only then)."""
    needle = None if database is None else f" {database} ".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() != "postgres":
                continue
            title = b"" if needle is None else (entry / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if needle is None or needle in title:
            yield entry.name, title


def postgres_cpu(database: str | None = None) -> dict[str, float]:
    """CPU seconds per pid of the local processes named `postgres`, only the backends serving
    `database` when given (empty for a remote server)."""
    out: dict[str, float] = {}
    for pid, _ in postgres_processes(database):
        cpu = proc_cpu(pid)
        if cpu is not None:
            out[pid] = cpu
    return out


def machine_cpu() -> tuple[float, float] | None:
    """(busy, total) CPU seconds of the whole machine, from /proc/stat (None when unreadable)."""
    try:
        first = Path("/proc/stat").read_text().splitlines()[0].split()
    except OSError:
        return None
    ticks = [int(v) for v in first[1:9]]
    idle = ticks[3] + ticks[4]
    total = sum(ticks)
    return (total - idle) / _TICK, total / _TICK


def rss_kb(pid: int | None) -> int:
    """Resident memory of a process in KiB (VmRSS), 0 when unreadable."""
    if pid is None:
        return 0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def percentile_ms(seconds: list[float], q: float) -> float:
    """The `q` quantile (nearest rank, rounded down) of durations in seconds, in ms; NaN if none."""
    if not seconds:
        return math.nan
    ordered = sorted(seconds)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000
