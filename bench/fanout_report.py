"""The figures of one `bench.fanout` round (one N) and the printed report."""

from __future__ import annotations

import argparse
import math
import os
from dataclasses import dataclass, field

from bench.fanout_load import GIVE_UP_SECONDS
from bench.metrics import percentile_ms
from bench.report import table

TARGETS = (
    "5,000 concurrent subscribers on one api process",
    "at 1,000 subscribers: commit-to-receive p99 < 100 ms",
    "at 1,000 subscribers: >= 15,000 deliveries/s (offered/s must be at least that: --rate 75)",
    "mutation latency unaffected by fan-out (--mutations-to other)",
)


@dataclass
class Round:
    """Figures for one N."""

    n: int
    dashboards: int
    per_customer: float
    client_procs: int
    rate: float
    connect_seconds: float = 0.0
    connect_failed: int = 0
    lost: int = 0
    prime_rounds: int = 0
    rss_base_kb: int = 0
    rss_connected_kb: int = 0
    rss_after_kb: int = 0
    events: int = 0
    expected: int = 0
    delivered: int = 0
    span: float = 0.0
    latencies: list[float] = field(default_factory=list)
    mutation_latencies: list[float] = field(default_factory=list)
    mutation_errors: int = 0
    mutation_skipped: int = 0
    relay: list[float] = field(default_factory=list)  # per event: occurredAt -> published_at
    from_publish: list[float] = field(default_factory=list)  # per delivery: published -> receive
    cpu: dict[str, float] = field(default_factory=dict)
    client_cpu: list[float] = field(default_factory=list)
    machine_busy: float = math.nan
    api_cpu_seconds: float = 0.0
    api_sys_share: float = math.nan
    mutation_cpu: float = math.nan  # api CPU seconds per mutation, nobody subscribed
    mutations_elsewhere: bool = False  # the mutations went to a second api process
    dropped: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def kb_per_connection(self) -> float:
        return (self.rss_connected_kb - self.rss_base_kb) / self.n if self.n else math.nan

    @property
    def offered_per_second(self) -> float:
        """Deliveries per second the stream asks for: rate x subscribers reached per event."""
        return self.rate * (self.dashboards + self.per_customer)

    @property
    def fanout_us_per_delivery(self) -> float:
        """API CPU per delivery once the mutations' own share is taken out."""
        if not self.delivered or math.isnan(self.mutation_cpu):
            return math.nan
        mutations = 0.0 if self.mutations_elsewhere else self.events * self.mutation_cpu
        fanout = self.api_cpu_seconds - mutations
        return fanout / self.delivered * 1e6

    @property
    def delivered_per_second(self) -> float:
        return self.delivered / self.span if self.span else math.nan

    def pct(self, q: float) -> float:
        """Commit-to-receive percentile in ms; deliveries that never came count as infinite."""
        return percentile_ms(self.latencies + [math.inf] * (self.expected - self.delivered), q)


def ms(value: float) -> str:
    if math.isnan(value):
        return "-"
    if math.isinf(value):
        return "lost"
    return f"{value:.0f}" if value >= 10 else f"{value:.1f}"


def _pair(values: list[float]) -> str:
    return f"{ms(percentile_ms(values, 0.5))}/{ms(percentile_ms(values, 0.99))}"


def _table(title: str, head: list[str], rows: list[list[str]]) -> None:
    print()
    print(title)
    for line in table([head], rows):
        print(line)


def print_report(rounds: list[Round], args: argparse.Namespace) -> None:
    _table(
        "Deliveries (latency: event occurredAt -> client receive, same clock; ms)",
        ["N", "dash", "subs/cust", "events", "offered/s", "delivered/s", "late", "p50", "p99",
         "max", "publish->recv p50/p99", "relay p50/p99", "mutation p50/p99"],
        [[
            str(r.n), str(r.dashboards), f"{r.per_customer:.1f}", str(r.events),
            f"{r.offered_per_second:,.0f}", f"{r.delivered_per_second:,.0f}",
            f"{(r.expected - r.delivered) / r.expected:.0%}" if r.expected else "-",
            ms(r.pct(0.50)), ms(r.pct(0.99)), ms(r.pct(1.0)), _pair(r.from_publish),
            _pair(r.relay), _pair(r.mutation_latencies),
        ] for r in rounds],
    )  # fmt: skip
    _table(
        "Connections and memory of the api process (VmRSS)",
        ["N", "client procs", "connect s", "failed", "lost", "RSS base MB", "connected MB",
         "after stream MB", "KiB/conn"],
        [[
            str(r.n), str(r.client_procs), f"{r.connect_seconds:.1f}", str(r.connect_failed),
            str(r.lost), f"{r.rss_base_kb / 1024:.0f}", f"{r.rss_connected_kb / 1024:.0f}",
            f"{r.rss_after_kb / 1024:.0f}", f"{r.kb_per_connection:.0f}",
        ] for r in rounds],
    )  # fmt: skip
    _table(
        f"CPU during the stream and drain (% of one core; {os.cpu_count()} cores = "
        f"{100 * (os.cpu_count() or 1)}%)",
        ["N", "api", "of it kernel", "ms/mutation", "us/delivery", "worker", "postgres",
         "valkey", "clients", "driver", "others", "machine"],
        [[
            str(r.n), f"{r.cpu['api']:.0%}", f"{r.api_sys_share:.0%}",
            f"{r.mutation_cpu * 1000:.1f}", f"{r.fanout_us_per_delivery:.0f}",
            f"{r.cpu['worker']:.0%}", f"{r.cpu['postgres']:.0%}", f"{r.cpu['valkey']:.0%}",
            "+".join(f"{c:.0%}" for c in r.client_cpu), f"{r.cpu['driver']:.0%}",
            f"{r.cpu['others']:.0%}", f"{r.machine_busy * (os.cpu_count() or 1):.0%}",
        ] for r in rounds],
    )  # fmt: skip
    print()
    print("Reference targets (not verdicts):")
    for target in TARGETS:
        print(f"  - {target}")
    print()
    print("Notes:")
    for r in rounds:
        print(f"  N={r.n}: " + "; ".join(_notes(r, args)))
    print(
        "  offered/s: rate x subscribers an event reaches (its customer's and every dashboard);\n"
        "  delivered/s: deliveries received / time from stream start to the last receive; late:\n"
        "  deliveries owed for the committed events but not received by the end of the drain\n"
        "  (counted as infinite in p50/p99/max). publish->recv: outbox published_at -> receive\n"
        "  (Redis, api fan-out, client); relay: occurredAt -> published_at per event (api\n"
        "  insert-to-commit + worker). KiB/conn: (RSS after connecting and one event each -\n"
        "  RSS before) / N. ms/mutation: api CPU per updateTask,\n"
        "  measured first with nobody subscribed; us/delivery: (api CPU in the window -\n"
        "  mutations x ms/mutation) / deliveries, the fan-out cost of one delivery. others:\n"
        "  machine CPU not used by this bench's processes (other work on the machine; postgres\n"
        "  counts every local postgres process)."
    )


def _notes(r: Round, args: argparse.Namespace) -> list[str]:
    notes = []
    if r.cpu["api"] >= 0.85:
        notes.append(
            f"api process at {r.cpu['api']:.0%} of a core: its one event loop is the limit"
        )
    cores = os.cpu_count() or 1
    if r.machine_busy >= 0.9:
        notes.append(
            f"machine {r.machine_busy:.0%} busy: everything competes for {cores} cores"
            + (
                f", {r.cpu['others']:.0%} of a core by other processes"
                if r.cpu["others"] > 0.2
                else ""
            )
        )
    busiest = max(r.client_cpu, default=0.0)
    if busiest >= 0.8:
        notes.append(
            f"a client process at {busiest:.0%}: receive times are inflated (--client-procs)"
        )
    missing = r.expected - r.delivered
    if missing:
        notes.append(
            f"{missing:,} of {r.expected:,} deliveries not received {args.drain:g} s after "
            "the last mutation"
        )
    if r.expected and r.delivered_per_second < 0.9 * r.offered_per_second:
        notes.append(
            "delivered/s below offered/s: the api did not keep up, latency grows with "
            "the length of the stream"
        )
    if r.connect_failed or r.dropped:
        notes.append(f"{r.connect_failed} subscribers failed to connect, {r.dropped} dropped")
    if r.lost:
        notes.append(
            f"{r.lost} subscribers connected but never received an event (left out of "
            "the owed deliveries)"
        )
    if r.mutation_errors:
        notes.append(f"{r.mutation_errors} mutations failed")
    if r.mutation_skipped:
        notes.append(
            f"{r.mutation_skipped} mutations skipped: not started within "
            f"{GIVE_UP_SECONDS:g} s of their time (the api was far behind)"
        )
    notes.extend(r.errors[:3])
    return notes or ["kept up with the offered load"]
