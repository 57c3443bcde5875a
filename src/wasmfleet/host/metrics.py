"""The host's own metrics and probes: /metrics (Prometheus), /healthz, /readyz.

    wasmfleet_host_workloads{state}                      workloads by state (gauge)
    wasmfleet_host_components                            components of running workloads (gauge)
    wasmfleet_host_workload_starts_total{result}         starts answered RUNNING / ERROR
    wasmfleet_host_workload_start_seconds                start request -> RUNNING (histogram)
    wasmfleet_host_workload_stops_total                  workloads stopped
    wasmfleet_host_commands_total{command,outcome}       requests answered (ok, bad_request, unknown, error)
    wasmfleet_host_heartbeats_published_total            heartbeats published
    wasmfleet_host_artifact_download_bytes_total         component bytes downloaded (cache misses)
    wasmfleet_host_nats_connected                        1 while the NATS link is up
    wasmfleet_host_http_requests_total{workload}         requests served per workload (data plane)
    wasmfleet_host_http_traps_total{workload}            guest traps per workload
    wasmfleet_host_http_timeouts_total{workload}         requests that hit the CPU deadline
    wasmfleet_host_http_inflight                         requests being served now
    wasmfleet_host_messages_total{workload,outcome}      messages per messaging workload: received,
                                                         handled, failed (err result), dropped_admission,
                                                         dropped_trap, dropped_deadline
    wasmfleet_host_messages_inflight                     messages being handled now
    wasmfleet_host_messages_dropped_overflow_total       messages NATS-side buffers discarded (slow consumer)

The data-plane figures are read from the wasm server when scraped (summed over worker processes).
/readyz answers 503 with what is missing (NATS not connected, shutting down), so a probe failure
says why.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

START_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class HostMetrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.workloads = Gauge("wasmfleet_host_workloads", "Workloads on this host by state", ["state"], registry=r)
        self.components = Gauge("wasmfleet_host_components", "Components of running workloads", registry=r)
        self.starts = Counter("wasmfleet_host_workload_starts", "Workload starts by result", ["result"], registry=r)
        self.start_seconds = Histogram(
            "wasmfleet_host_workload_start_seconds", "Start request to RUNNING", buckets=START_BUCKETS, registry=r
        )
        self.stops = Counter("wasmfleet_host_workload_stops", "Workloads stopped", registry=r)
        self.commands = Counter(
            "wasmfleet_host_commands", "Requests answered", ["command", "outcome"], registry=r
        )
        self.heartbeats = Counter("wasmfleet_host_heartbeats_published", "Heartbeats published", registry=r)
        self.download_bytes = Counter(
            "wasmfleet_host_artifact_download_bytes", "Component bytes downloaded", registry=r
        )
        self.services = Gauge("wasmfleet_host_services", "Services of running workloads by state", ["state"],
                              registry=r)
        self.service_restarts = Counter("wasmfleet_host_service_restarts", "Service restarts after a failure",
                                        registry=r)
        self.nats_connected = Gauge("wasmfleet_host_nats_connected", "1 while connected to NATS", registry=r)
        self.http_requests = Gauge(
            "wasmfleet_host_http_requests_total", "HTTP requests served per workload", ["workload"], registry=r
        )
        self.http_traps = Gauge("wasmfleet_host_http_traps_total", "Guest traps per workload", ["workload"],
                                registry=r)
        self.http_timeouts = Gauge(
            "wasmfleet_host_http_timeouts_total", "Requests that hit the CPU deadline", ["workload"], registry=r
        )
        self.http_inflight = Gauge("wasmfleet_host_http_inflight", "HTTP requests being served", registry=r)
        self.messages = Gauge("wasmfleet_host_messages_total", "Messages per workload by outcome",
                              ["workload", "outcome"], registry=r)
        self.messages_inflight = Gauge("wasmfleet_host_messages_inflight", "Messages being handled", registry=r)
        self.messages_overflow = Gauge("wasmfleet_host_messages_dropped_overflow_total",
                                       "Messages dropped from full subscription buffers", registry=r)

    def observe_data_plane(self, stats: dict[str, Any]) -> None:
        """Fold the wasm server's per-worker stats into the data-plane gauges."""
        totals: dict[str, dict[str, int]] = {}
        inflight = 0
        for worker in stats.get("workers", []):
            if not isinstance(worker, dict):
                continue
            inflight += int(worker.get("inflight", 0))
            for workload_id, figures in (worker.get("workloads") or {}).items():
                into = totals.setdefault(workload_id, {"requests": 0, "traps": 0, "timeouts": 0})
                for key in into:
                    into[key] += int(figures.get(key, 0))
        for gauge in (self.http_requests, self.http_traps, self.http_timeouts):
            gauge.clear()  # stopped workloads disappear from the scrape
        for workload_id, figures in totals.items():
            self.http_requests.labels(workload_id).set(figures["requests"])
            self.http_traps.labels(workload_id).set(figures["traps"])
            self.http_timeouts.labels(workload_id).set(figures["timeouts"])
        self.http_inflight.set(inflight)
        self._observe_messaging(stats)

    def _observe_messaging(self, stats: dict[str, Any]) -> None:
        totals: dict[str, dict[str, int]] = {}
        inflight = overflow = 0
        for worker in stats.get("workers", []):
            messaging = worker.get("messaging") if isinstance(worker, dict) else None
            if not isinstance(messaging, dict):
                continue
            overflow += int(messaging.get("slow_consumer_drops", 0))
            for workload_id, figures in (messaging.get("workloads") or {}).items():
                into = totals.setdefault(workload_id, {})
                for key, value in figures.items():
                    if key == "inflight":
                        inflight += int(value)
                    elif key != "inline":  # how, not an outcome: a share of the others
                        into[key] = into.get(key, 0) + int(value)
        self.messages.clear()
        for workload_id, figures in totals.items():
            for outcome, value in figures.items():
                self.messages.labels(workload_id, outcome).set(value)
        self.messages_inflight.set(inflight)
        self.messages_overflow.set(overflow)
