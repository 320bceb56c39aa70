"""Prometheus metrics of a Liftoff process, with bounded label sets (no customer ids).

With `PROMETHEUS_MULTIPROC_DIR` set (`liftoff serve --workers N` sets it), every process
writes its samples there and any process answers a scrape with the sum over all of them.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.registry import REGISTRY

from app.kit import group_commit

__all__ = ["CONTENT_TYPE_LATEST", "exposition", "operation_label"]

LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

OPERATIONS = Counter(
    "liftoff_graphql_operations",
    "GraphQL operations by operation name, type and outcome (ok, error).",
    ["operation", "type", "outcome"],
)
OPERATION_SECONDS = Histogram(
    "liftoff_graphql_operation_seconds",
    "Time to answer a GraphQL query or mutation, or to start a subscription.",
    ["operation", "type"],
    buckets=LATENCY_BUCKETS,
)
ERRORS = Counter("liftoff_graphql_errors", "GraphQL errors by extensions.code.", ["code"])
HTTP_REQUESTS = Counter(
    "liftoff_http_requests", "HTTP requests by route and status class.", ["route", "status"]
)
WEBSOCKETS = Gauge(
    "liftoff_websocket_connections", "Open websocket connections.", multiprocess_mode="livesum"
)
SUBSCRIPTIONS = Gauge(
    "liftoff_subscriptions",
    "Running subscriptions by field.",
    ["field"],
    multiprocess_mode="livesum",
)
DELIVERIES = Counter(
    "liftoff_subscription_deliveries",
    "Events handed to subscribers, by channel kind (customer, activity).",
    ["channel"],
)
DELIVERY_SECONDS = Histogram(
    "liftoff_delivery_latency_seconds",
    "From the event's commit to its hand-over to a subscriber of this process.",
    ["channel"],
    buckets=LATENCY_BUCKETS,
)
OUTBOX_PENDING = Gauge(
    "liftoff_outbox_pending_events",
    "Committed events not published yet.",
    multiprocess_mode="livemax",
)
OUTBOX_OLDEST = Gauge(
    "liftoff_outbox_oldest_pending_seconds",
    "Age of the oldest unpublished event (relay lag).",
    multiprocess_mode="livemax",
)
RELAY_BATCHES = Counter("liftoff_relay_batches", "Relay batches that published events.")
RELAY_EVENTS = Counter("liftoff_relay_events", "Events published by the relay.")
CONSUMER_LAG = Gauge(
    "liftoff_consumer_lag_seconds",
    "Age of the oldest event each outbox consumer has not handled yet.",
    ["consumer"],
    multiprocess_mode="livemax",
)
CONSUMER_EVENTS = Counter(
    "liftoff_consumer_events", "Events handled by each outbox consumer.", ["consumer"]
)
CONSUMER_FAILURES = Counter("liftoff_consumer_failures", "Failed consumer batches.", ["consumer"])
EXTERNAL_DELIVERIES = Counter(
    "liftoff_external_deliveries",
    "Emails and webhooks attempted, by kind and outcome (sent, retry, failed, dead).",
    ["kind", "outcome"],
)
EXTERNAL_SECONDS = Histogram(
    "liftoff_external_delivery_seconds",
    "From the triggering event's commit to the successful send, by kind.",
    ["kind"],
    buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 7200),
)
RATE_LIMITED = Counter(
    "liftoff_rate_limited", "Requests refused by a rate limit, by budget.", ["budget"]
)
DB_POOL = Gauge(
    "liftoff_db_pool_connections",
    "Database pool connections by state (in_use, idle, max).",
    ["state"],
    multiprocess_mode="livesum",
)
BROKER_CONNECTED = Gauge(
    "liftoff_broker_connected",
    "1 while the Redis broker is connected (or the in-memory broker is used), else 0.",
    multiprocess_mode="livemin",
)
PROCESS_RSS = Gauge(
    "liftoff_process_resident_memory_bytes",
    "Resident memory of each process.",
    multiprocess_mode="all",
)
PROCESS_CPU = Gauge(
    "liftoff_process_cpu_seconds",
    "CPU time used by each process.",
    multiprocess_mode="all",
)
GROUP_COMMIT_BATCHES = Counter(
    "liftoff_group_commit_batches",
    "Batches of concurrent single-statement writes sent in one round trip and committed"
    " together, by how many writes each held (1 to 32).",
    ["size"],
)

_CHILDREN: dict[tuple[object, tuple[str, ...]], Any] = {}


def child(metric: Any, *values: str) -> Any:
    """`metric.labels(*values)`, looked up once per metric and label values (the client hands
    out the same child every time; this skips its lock and checks). Only for bounded label
    sets, as every label here is."""
    key = (metric, values)
    found = _CHILDREN.get(key)
    if found is None:
        found = _CHILDREN[key] = metric.labels(*values)
    return found


MAX_OPERATION_NAMES = 200
_names: set[str] = set()
_names_lock = threading.Lock()


def operation_label(name: str | None) -> str:
    """A bounded label for a client-chosen operation name: the first 200 distinct names are
    kept, later ones count as `other`, anonymous operations as `anonymous`."""
    if not name:
        return "anonymous"
    label = name[:64]
    if label in _names:
        return label
    with _names_lock:
        if len(_names) < MAX_OPERATION_NAMES:
            _names.add(label)
            return label
    return "other"


def multiprocess_dir() -> str | None:
    """The shared sample folder when several processes report together."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def exposition() -> bytes:
    """The current samples in the Prometheus text format (summed over processes)."""
    sample_process()
    if multiprocess_dir():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(REGISTRY)


def mark_process_dead() -> None:
    """Forget this process's live gauges in the shared folder (call when it stops)."""
    if multiprocess_dir():
        multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


def sample_process() -> None:
    """Record this process's memory, CPU time and group-commit batches."""
    try:
        with open("/proc/self/statm") as statm:
            pages = int(statm.read().split()[1])
        PROCESS_RSS.set(pages * os.sysconf("SC_PAGE_SIZE"))
    except OSError:
        pass
    times = os.times()
    PROCESS_CPU.set(times.user + times.system)
    _count_group_commits()


_batches_counted: dict[int, int] = {}


def _count_group_commits() -> None:
    """Add the group-commit batches sent since the last call to their counter."""
    for size, sent in list(group_commit.sizes.items()):
        new = sent - _batches_counted.get(size, 0)
        if new > 0:
            GROUP_COMMIT_BATCHES.labels(str(size)).inc(new)
            _batches_counted[size] = sent


def set_pool(*, in_use: int, idle: int, size_max: int) -> None:
    """Record the database pool's state."""
    DB_POOL.labels("in_use").set(in_use)
    DB_POOL.labels("idle").set(idle)
    DB_POOL.labels("max").set(size_max)


def set_consumer_lags(lags: Iterable[tuple[str, float]]) -> None:
    """Record each consumer's lag."""
    for name, seconds in lags:
        CONSUMER_LAG.labels(name).set(seconds)
