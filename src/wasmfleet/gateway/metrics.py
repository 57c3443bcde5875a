"""Prometheus metrics of one gateway, in their own registry (so several gateways can live in one test)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import prometheus_client as prom

UNKNOWN_ROUTE = "(unknown)"
"""Label for requests no route claims: one series, whatever Host headers clients send."""


@dataclass
class GatewayMetrics:
    registry: prom.CollectorRegistry = field(default_factory=prom.CollectorRegistry)

    _routes: dict[str, RouteMetrics] = field(default_factory=dict)

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

    def route(self, name: str) -> RouteMetrics:
        """The per-route series, resolved once: `labels()` costs ~10 µs, a noticeable share of a proxied
        request, so the hot path keeps the children. Routes come from the table (bounded)."""
        found = self._routes.get(name)
        if found is None:
            found = self._routes[name] = RouteMetrics(self, name)
        return found

    def render(self) -> bytes:
        return bytes(prom.generate_latest(self.registry))

    def set_backends(self, counts: dict[str, int]) -> None:
        """Publish the table's size per route, dropping series of routes that disappeared."""
        self.backends.clear()
        for route, n in counts.items():
            self.backends.labels(route=route).set(n)


class RouteMetrics:
    def __init__(self, metrics: GatewayMetrics, route: str) -> None:
        self._metrics = metrics
        self._route = route
        self.in_flight = metrics.in_flight.labels(route=route)
        self.duration = metrics.duration.labels(route=route)
        self.retries = metrics.retries.labels(route=route)
        self._codes: dict[int, Any] = {}

    def answered(self, code: int, seconds: float) -> None:
        counter = self._codes.get(code)
        if counter is None:
            counter = self._codes[code] = self._metrics.requests.labels(route=self._route, code=str(code))
        counter.inc()
        self.duration.observe(seconds)
