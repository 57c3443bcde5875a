"""Settings of one API server process, built once by the CLI and passed down."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ServerSettings:
    data_dir: Path
    """Holds state.db (SQLite), token, tls/ and the kubeconfig clients use."""
    host: str = "127.0.0.1"
    """Loopback by default: the embedded server is for one machine."""
    port: int = 6443
    """0 picks a free port; the kubeconfig always holds the real one."""
    token: str | None = None
    """Bearer token; None reuses DATA_DIR/token or generates one there."""
    tls: bool = True
    """Serve HTTPS with a self-signed CA generated under DATA_DIR/tls (kept across restarts). On by default
    because kubectl (client-go) never sends a bearer token over plain HTTP."""
    watch_window: int = 20_000
    """Committed changes kept in memory for watch resumption; older resourceVersions get 410 Gone."""
    bookmark_interval_s: float = 10.0
    """How often an idle watch that allows bookmarks receives one (kube-apiserver: about a minute)."""
    max_body_bytes: int = 3 * 1024 * 1024
    """Request bodies above this get 413, as with kube-apiserver's 3 MiB limit."""
    install_crds: bool = True
    """Install wasmfleet's five CRDs at start (tests of the bare server turn it off)."""
