"""The operator's Prometheus metrics, in one registry of its own (no global default registry).

    wasmfleet_operator_reconciles_total{controller,result}   result: success|requeue|error|permanent
    wasmfleet_operator_reconcile_seconds{controller}         reconcile latency histogram
    wasmfleet_operator_queue_depth{controller}               keys waiting
    wasmfleet_operator_hosts{state}                          hosts by Ready / NotReady
    wasmfleet_operator_placements_total{result}              placed | unschedulable | start_failed
    wasmfleet_operator_failovers_total                       workloads moved off a dead host
    wasmfleet_operator_heartbeats_total                      heartbeats received
    wasmfleet_operator_leader                                1 while this process holds the lease
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.reconciles = Counter(
            "wasmfleet_operator_reconciles", "Reconciles by controller and result",
            ["controller", "result"], registry=r,
        )
        self.reconcile_seconds = Histogram(
            "wasmfleet_operator_reconcile_seconds", "Reconcile latency", ["controller"], registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
        )
        self.queue_depth = Gauge(
            "wasmfleet_operator_queue_depth", "Keys waiting in the work queue", ["controller"], registry=r
        )
        self.hosts = Gauge("wasmfleet_operator_hosts", "Known hosts by state", ["state"], registry=r)
        self.placements = Counter(
            "wasmfleet_operator_placements", "Placement attempts by result", ["result"], registry=r
        )
        self.failovers = Counter(
            "wasmfleet_operator_failovers", "Workloads moved off a host that stopped reporting", registry=r
        )
        self.heartbeats = Counter("wasmfleet_operator_heartbeats", "Host heartbeats received", registry=r)
        self.leader = Gauge("wasmfleet_operator_leader", "1 while this process holds the lease", registry=r)

    def observe_reconcile(self, controller: str, result: str, seconds: float) -> None:
        self.reconciles.labels(controller, result).inc()
        self.reconcile_seconds.labels(controller).observe(seconds)
