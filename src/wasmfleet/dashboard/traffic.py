"""Request rate, error rate and latency quantiles from two Prometheus scrapes: pure functions, no I/O.

A scrape becomes a `Snapshot` of cumulative counters keyed by series:

    ("route", NAME)      the gateway's wasmfleet_gateway_requests_total{route,code} (errors: code >= 500)
                         and wasmfleet_gateway_request_duration_seconds_bucket{route,le}
    ("workload", ID)     a host's wasmfleet_host_http_requests_total{workload} (errors: guest traps and
                         CPU-deadline timeouts, wasmfleet_host_http_{traps,timeouts}_total); hosts keep no
                         latency histogram, so these points have no quantiles

The difference of two snapshots over the time between them gives a `Point`; quantiles are interpolated
inside the histogram bucket that holds them, as PromQL's histogram_quantile does.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

Key = tuple[str, str]

GATEWAY_REQUESTS = "wasmfleet_gateway_requests_total"
GATEWAY_BUCKETS = "wasmfleet_gateway_request_duration_seconds_bucket"
HOST_REQUESTS = "wasmfleet_host_http_requests_total"
HOST_ERRORS = ("wasmfleet_host_http_traps_total", "wasmfleet_host_http_timeouts_total")


@dataclass
class Counts:
    requests: float = 0.0
    errors: float = 0.0
    buckets: dict[float, float] = field(default_factory=dict)
    """Upper bound (seconds, inf for +Inf) -> cumulative count."""

    def add(self, other: Counts) -> None:
        self.requests += other.requests
        self.errors += other.errors
        for le, n in other.buckets.items():
            self.buckets[le] = self.buckets.get(le, 0.0) + n


Snapshot = dict[Key, Counts]


def parse(text: str) -> Snapshot:
    """The series this dashboard charts, from one /metrics body (other series are ignored).
    Malformed text raises ValueError."""
    snap: Snapshot = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if sample.name == GATEWAY_REQUESTS and "route" in labels:
                counts = snap.setdefault(("route", labels["route"]), Counts())
                counts.requests += sample.value
                if labels.get("code", "").startswith("5"):
                    counts.errors += sample.value
            elif sample.name == GATEWAY_BUCKETS and "route" in labels and "le" in labels:
                counts = snap.setdefault(("route", labels["route"]), Counts())
                le = float(labels["le"])  # "+Inf" parses as inf
                counts.buckets[le] = counts.buckets.get(le, 0.0) + sample.value
            elif sample.name == HOST_REQUESTS and "workload" in labels:
                snap.setdefault(("workload", labels["workload"]), Counts()).requests += sample.value
            elif sample.name in HOST_ERRORS and "workload" in labels:
                snap.setdefault(("workload", labels["workload"]), Counts()).errors += sample.value
    return snap


def merge(snapshots: Iterable[Snapshot]) -> Snapshot:
    """Sum of several scrapes taken at the same tick (several gateways or hosts)."""
    total: Snapshot = {}
    for snap in snapshots:
        for key, counts in snap.items():
            total.setdefault(key, Counts()).add(counts)
    return total


@dataclass(frozen=True)
class Point:
    time: float
    """Unix seconds at the end of the interval."""
    rps: float
    errors_ps: float
    p50_ms: float | None
    p99_ms: float | None

    def as_json(self) -> dict[str, float | None]:
        return {"t": round(self.time, 3), "rps": round(self.rps, 3), "err": round(self.errors_ps, 3),
                "p50": None if self.p50_ms is None else round(self.p50_ms, 3),
                "p99": None if self.p99_ms is None else round(self.p99_ms, 3)}


def _delta(new: float, old: float) -> float:
    return new - old if new >= old else new  # a counter that went down was reset (process restarted)


def point(new: Counts, old: Counts | None, seconds: float, now: float) -> Point:
    old = old or Counts()
    seconds = max(seconds, 1e-6)
    buckets = {le: _delta(n, old.buckets.get(le, 0.0)) for le, n in new.buckets.items()}
    return Point(now, _delta(new.requests, old.requests) / seconds, _delta(new.errors, old.errors) / seconds,
                 _ms(quantile(0.5, buckets)), _ms(quantile(0.99, buckets)))


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000.0


def quantile(q: float, buckets: dict[float, float]) -> float | None:
    """The q-quantile of cumulative `buckets` (le -> count), None without observations."""
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] <= 0:
        return None
    total = buckets[bounds[-1]]
    rank = q * total
    lower, below = 0.0, 0.0
    for le in bounds:
        count = buckets[le]
        if count >= rank:
            if math.isinf(le):
                return lower  # beyond the last finite bound: the best we know is that bound
            inside = count - below
            return lower + (le - lower) * ((rank - below) / inside if inside > 0 else 1.0)
        lower, below = le, count
    return lower
