"""Settings of `wasmfleet dashboard`, built once by the CLI and passed down."""

from __future__ import annotations

from dataclasses import dataclass, field

from wasmfleet.bus.connection_options import NatsConnectionOptions


@dataclass(frozen=True)
class DashboardSettings:
    host: str = "127.0.0.1"
    """Listen address. Loopback by default: anywhere else needs `token` or `auth_header` (access.py)."""
    port: int = 8088
    """Listen port (0 picks a free one)."""
    token: str | None = None
    """Viewers must present this bearer token (or the cookie `?token=` sets)."""
    auth_header: str | None = None
    """Viewers must arrive with this header, set by an authenticating reverse proxy."""
    namespace: str | None = None
    """Only this namespace's objects (None: all the kubeconfig's identity may list)."""
    metrics_urls: tuple[str, ...] = ()
    """Prometheus /metrics endpoints of gateways and hosts to chart (scraping.py)."""
    metrics_interval_s: float = 2.0
    """Seconds between scrapes: one chart point each. 2 s resolves a short load run without loading the
    gateway (a scrape costs it ~1 ms)."""
    nats_url: str | None = None
    """NATS of the fleet, for log lines (None: the per-workload page shows none)."""
    nats_options: NatsConnectionOptions = field(default_factory=NatsConnectionOptions)
    """Login for log requests (the fleet's `logs` identity)."""
    push_gap_s: float = 0.1
    """Least time between two pushes to one browser tab: a burst of events (a rollout) becomes one
    re-render, while a single change still shows well within a second."""
