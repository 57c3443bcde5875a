"""Prometheus metrics of one gateway, in their own registry (so several gateways can live in one test)."""

from __future__ import annotations

from dataclasses import dataclass, field

import prometheus_client as prom

UNKNOWN_ROUTE = "(unknown)"
"""Label for requests no route claims: one series, whatever Host headers clients send."""


@dataclass
class GatewayMetrics:
    registry: prom.CollectorRegistry = field(default_factory=prom.CollectorRegistry)

    def __post_init__(self) -> None:
        self.requests = prom.Counter(
            "wasmfleet_gateway_requests_total",
            "Requests answered, by route (Host name) and status code.",
            ["route", "code"],
            registry=self.registry,
        )
        self.duration = prom.Histogram(
            "wasmfleet_gateway_request_duration_seconds",
            "Time from request received to response headers sent, by route.",
            ["route"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.in_flight = prom.Gauge(
            "wasmfleet_gateway_requests_in_flight",
            "Requests being proxied now, by route.",
            ["route"],
            registry=self.registry,
        )
        self.retries = prom.Counter(
            "wasmfleet_gateway_upstream_retries_total",
            "Requests sent again to another replica after a connection failure, by route.",
            ["route"],
            registry=self.registry,
        )
        self.backends = prom.Gauge(
            "wasmfleet_gateway_route_backends",
            "Ready host endpoints per route.",
            ["route"],
            registry=self.registry,
        )

    def render(self) -> bytes:
        return bytes(prom.generate_latest(self.registry))

    def set_backends(self, counts: dict[str, int]) -> None:
        """Publish the table's size per route, dropping series of routes that disappeared."""
        self.backends.clear()
        for route, n in counts.items():
            self.backends.labels(route=route).set(n)
