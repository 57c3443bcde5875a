"""Gateway settings, built once by the CLI and passed down explicitly."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GatewaySettings:
    listen_host: str = "127.0.0.1"
    """Address the gateway listens on; loopback by default (the embedded fleet is a dev machine)."""
    port: int = 8000
    """Listening port; 0 picks a free one (tests). 8000 matches the upstream chart's container port."""
    connect_timeout_s: float = 2.0
    """Time to open a TCP connection to a host. Short: hosts are near, and a refused or hanging connect
    is retried on another replica, so waiting long only delays failover."""
    response_timeout_s: float = 30.0
    """Longest silence from a host (waiting for headers or between body chunks) before answering 504."""
    eject_s: float = 3.0
    """How long a host that refused a connection gets no new requests (see balancing.Balancer)."""
    max_idle_per_host: int = 64
    """Idle keep-alive connections kept per host; more concurrent requests open more, which are closed
    when they come back to a full pool."""
    buffer_limit: int = 64 * 1024
    """Request bodies up to this size (with a Content-Length) are buffered so the request can be retried
    on another replica; larger or chunked bodies stream straight through and are never retried."""
    chunk_size: int = 64 * 1024
    """Bytes copied per step when streaming a response body."""
    backend_header: bool = True
    """Add X-Wasmfleet-Host (the serving Host's name) to responses: shows which replica answered, which
    is what one wants on a development fleet; turn off where host names are not for clients' eyes."""
    slice_resync_s: float = 30.0
    """Period of the EndpointSlice full resync (repairs slices edited or deleted by someone else)."""
    metrics_auth: bool = False
    """Answer /metrics only to bearer tokens the API server authenticates (TokenReview) and allows to get
    /metrics (SubjectAccessReview); see observability.metrics_auth."""
