"""What to run: immutable descriptions of a component and of the runtime's settings.

`ComponentSpec` is what the host agent (or `wasmfleet serve`) hands to `WasmServer`; it is plain
data (picklable) because it crosses into worker processes.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wasmfleet.host.plugin_api.host_plugins import HostContext
from wasmfleet.host.wasi.socket_policy import NetworkAccess

__all__ = ["ComponentSpec", "EngineSettings", "Grant", "NetworkAccess", "Preopen", "RuntimeSettings"]


@dataclass(frozen=True)
class Grant:
    """One host interface a workload may import, e.g. wasi:http/{incoming-handler,outgoing-handler}.

    `version` None matches any version of the package; `name` distinguishes named entries binding
    several backends of one interface (upstream `hostInterfaces[].name`).
    """

    namespace: str
    package: str
    interfaces: tuple[str, ...] = ()
    version: str | None = None
    name: str | None = None
    config: dict[str, str] = field(default_factory=dict, hash=False, compare=False)

    def covers(self, namespace: str, package: str, interface: str) -> bool:
        """True when this grant lets a component import `namespace:package/interface`.

        An empty `interfaces` tuple grants the whole package.
        """
        if (namespace, package) != (self.namespace, self.package):
            return False
        return not self.interfaces or interface in self.interfaces


@dataclass(frozen=True)
class Preopen:
    """A host directory visible to the guest as a WASI preopen."""

    host_path: Path
    guest_path: str
    read_only: bool = False


@dataclass(frozen=True)
class ComponentSpec:
    """One component of a workload, as the runtime needs it.

    pool_size 0 means a fresh instance per request (the default, for isolation); pool_size N keeps up
    to N warm instances. max_invocations 0 means unlimited reuse of a warm instance.
    max_concurrency is accepted for compatibility: wasmtime instances are not re-entrant, so an
    instance serves one call at a time and concurrency comes from more instances.
    memory_limit_mb 0 and request_timeout_s 0 mean the server's defaults.
    """

    workload_id: str
    name: str
    wasm_path: Path
    grants: tuple[Grant, ...] = ()
    config: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    environment: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    allowed_hosts: tuple[str, ...] = ()
    network: NetworkAccess = field(default_factory=NetworkAccess)
    """wasi:sockets: the workload's private loopback directory, allowedIpNameLookups and
    allowedHostLoopbackPorts (allowedHosts is `allowed_hosts`). Every component and the service
    of one workload must carry the same `loopback_dir` (see `wasi.private_loopback`)."""
    preopens: tuple[Preopen, ...] = ()
    pool_size: int = 0
    max_invocations: int = 0
    max_concurrency: int = 1
    memory_limit_mb: int = 0
    cpu_limit_millicores: int = 0
    """CPU per guest thread in thousandths of a core (cpu_quota); 0 = not throttled."""
    request_timeout_s: float = 0.0
    peers: tuple[ComponentSpec, ...] = field(default=(), hash=False, compare=False)
    """The workload's other components, in manifest order. This component's imports that one of
    them exports (same interface name and version) are linked to that component, which is then
    instantiated in the same store for every call (see `linking.resolve_workload`). Empty for a
    one-component workload."""

    def grants_interface(self, namespace: str, package: str, interface: str) -> bool:
        return any(g.covers(namespace, package, interface) for g in self.grants)


COMPILERS = ("tiered", "cranelift", "winch")


@dataclass(frozen=True)
class EngineSettings:
    """How this process's wasmtime engine and host calls are set up (process-wide, see `engines`).

    Built by the CLI (`wasmfleet host`, `wasmfleet serve`; the environment variables below are read
    there and by the test fixtures, never at import time) and passed down inside RuntimeSettings.
    """

    fast_host_calls: bool = True
    """Host calls enter through the C extension `_fasthost` when it was built; False = the
    pure-Python trampoline for every function (same behaviour, slower). CLI: WASMFLEET_FASTHOST=0."""

    pooling_allocator: bool = True
    """wasmtime's pooling instance allocator (memory slots reused across instances); False for
    diagnosis or a tight address space. Fixed by the first engine a process creates.
    CLI: WASMFLEET_POOLING=0."""

    compiler: str = "tiered"
    """Which wasmtime compiler makes code for a component (see `engines`): "tiered" compiles a
    component the host has not compiled before with Winch (baseline, about 5x faster to compile)
    so it serves at once, and with Cranelift (optimizing) in the background, then swaps;
    "cranelift" or "winch" use only that one. CLI: WASMFLEET_COMPILER."""

    def __post_init__(self) -> None:
        if self.compiler not in COMPILERS:
            raise ValueError(f"WASMFLEET_COMPILER / EngineSettings.compiler must be one of "
                             f"{', '.join(COMPILERS)}, not {self.compiler!r}")

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> EngineSettings:
        """The documented switches: WASMFLEET_FASTHOST=0 and WASMFLEET_POOLING=0 turn each off;
        WASMFLEET_COMPILER=tiered|cranelift|winch picks the compiler (ValueError for another)."""
        return cls(
            fast_host_calls=environ.get("WASMFLEET_FASTHOST", "1") != "0",
            pooling_allocator=environ.get("WASMFLEET_POOLING", "1") != "0",
            compiler=environ.get("WASMFLEET_COMPILER", "tiered").strip().lower() or "tiered",
        )


def _default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "wasmfleet" / "components"


@dataclass(frozen=True)
class RuntimeSettings:
    """Knobs of the runtime, built once by the CLI or the host agent and passed down."""

    cache_dir: Path = field(default_factory=_default_cache_dir)
    """Where compiled components are kept (serialized wasmtime artefacts, loaded with mmap)."""

    request_timeout_s: float = 30.0
    """CPU-time budget of one request when the component does not set one (epoch deadline -> 504)."""

    memory_limit_mb: int = 512
    """Linear-memory cap per instance when the component does not set one (exceeding it -> 500).
    512 MB fits the 13-18 MB interpreter guests (componentize-js/py) with room for their heaps."""

    epoch_tick_s: float = 0.01
    """Period of the epoch ticker; deadlines are whole ticks, so 10 ms is the timeout resolution."""

    max_request_body_mb: int = 64
    """Largest request body accepted (413 beyond): bodies are buffered between loop and guest."""

    wasm_threads: int = 16
    """Guest calls that may block on host I/O (see serving) run concurrently on at most this many
    threads per serving process; more requests wait for a free thread."""

    drain_timeout_s: float = 10.0
    """Default bound of a graceful stop."""

    guest_log_dir: Path | None = None
    """Where each workload's stdout/stderr lines are appended (<dir>/<workloadId>.log, see guestlogs),
    for `wasmfleet logs`; None = only the process log."""

    engine: EngineSettings = field(default_factory=EngineSettings)
    """Engine and host-call entry of the process (see EngineSettings)."""

    plugin_host: HostContext = field(default_factory=HostContext)
    """What host plugins share per host process (host id, NATS servers), see plugin_registry."""

    extra: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
