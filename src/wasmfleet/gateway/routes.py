"""The gateway's routing table: which host HTTP ports serve which Host header.

Pure data and pure functions, no I/O: `watching` feeds it Host and Workload objects as seen in the API,
`proxying` reads it for every request. Keeping it pure lets the unit tests pin every routing rule
(hostnames, aliases, readiness) without a server.

Rules (upstream wasmCloud v2 semantics, plus balancing over every Ready replica):
- a Workload's route names and the normalisation of Host headers are the shared contract in
  `wasmfleet.bus.http_routing` (the host applies the same one, so a name the gateway routes is a name
  the host serves): config ``host`` and ``host-aliases`` of its wasi:http incoming-handler entry, plus
  the Service's names when ``spec.kubernetes.service.name`` is set;
- a Workload serves only when its Ready condition is True and ``status.hostId`` names a known Host that
  advertises a hostname and an httpPort and is not explicitly not-Ready;
- several Workloads on one host that share a hostname collapse into one backend (the host itself balances
  between them), so a backend is a (address, port) pair.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from wasmfleet.bus import http_routing


@dataclass(frozen=True, order=True)
class Backend:
    """One host HTTP endpoint that serves a route."""

    address: str
    """Where the host listens (Host.hostname): a name or an IP literal."""
    port: int
    """Host.httpPort."""
    host_id: str = field(compare=False, default="")
    """Host.hostId, for logs and EndpointSlices."""
    host_name: str = field(compare=False, default="")
    """Name of the Host object (friendly name), for EndpointSlices."""

    @property
    def authority(self) -> str:
        """``address:port`` with IPv6 literals bracketed, as used in a URL."""
        if ":" in self.address and not self.address.startswith("["):
            return f"[{self.address}]:{self.port}"
        return f"{self.address}:{self.port}"


@dataclass(frozen=True)
class HostInfo:
    """The few fields of a Host object that routing needs."""

    name: str
    host_id: str
    hostname: str
    http_port: int
    ready: bool | None
    """The Ready condition: True, False, or None when absent/Unknown."""


@dataclass(frozen=True)
class WorkloadInfo:
    """The few fields of a Workload object that routing needs."""

    namespace: str
    name: str
    host_id: str
    ready: bool
    hostnames: tuple[str, ...]
    """Every Host-header name this workload answers to (config host plus service aliases)."""
    service: str | None = None
    """spec.kubernetes.service.name, when set."""


@dataclass(frozen=True)
class ServiceKey:
    namespace: str
    name: str


@dataclass(frozen=True)
class RoutingTable:
    """Host header name -> backends, plus Kubernetes Service -> backends for EndpointSlices."""

    routes: Mapping[str, tuple[Backend, ...]] = field(default_factory=dict)
    services: Mapping[ServiceKey, tuple[Backend, ...]] = field(default_factory=dict)

    def backends_for(self, host_header: str | None) -> tuple[Backend, ...]:
        """Backends for a request's Host header (port stripped, case-insensitive); empty if unknown."""
        if not host_header:
            return ()
        return self.routes.get(http_routing.normalize_hostname(host_header), ())

    def route_name(self, host_header: str | None) -> str | None:
        """The routing key a Host header maps to, or None when no route claims it."""
        if not host_header:
            return None
        name = http_routing.normalize_hostname(host_header)
        return name if name in self.routes else None


def _condition_status(obj: Mapping[str, Any], type_: str) -> bool | None:
    status = obj.get("status") or {}
    for cond in status.get("conditions") or []:
        if isinstance(cond, Mapping) and cond.get("type") == type_:
            value = cond.get("status")
            if value == "True":
                return True
            if value == "False":
                return False
            return None
    return None


def host_info(obj: Mapping[str, Any]) -> HostInfo | None:
    """Routing view of a Host object (API JSON); None when it cannot receive traffic at all."""
    meta = obj.get("metadata") or {}
    # Operator-made Hosts carry these at the top level; the wasmCloud docs' hand-written form nests
    # them under spec. Top level wins, as in api.resources.Host.effective_host_id.
    spec = obj.get("spec")
    compat: Mapping[str, Any] = spec if isinstance(spec, Mapping) else {}
    hostname = obj.get("hostname") or compat.get("hostname")
    port = obj.get("httpPort") or compat.get("httpPort")
    host_id = obj.get("hostId") or compat.get("hostId")
    if not hostname or not host_id or not isinstance(port, int) or not 0 < port < 65536:
        return None
    return HostInfo(
        name=str(meta.get("name", "")),
        host_id=str(host_id),
        hostname=str(hostname),
        http_port=port,
        ready=_condition_status(obj, "Ready"),
    )


def handler_configs(spec: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The config maps of a WorkloadSpec's wasi:http incoming-handler entries (API JSON)."""
    configs: list[Mapping[str, Any]] = []
    for entry in spec.get("hostInterfaces") or []:
        if not isinstance(entry, Mapping):
            continue
        interfaces = entry.get("interfaces")
        if not http_routing.is_http_handler(
            str(entry.get("namespace", "")), str(entry.get("package", "")),
            [str(i) for i in interfaces] if isinstance(interfaces, list) else [],
        ):
            continue
        config = entry.get("config")
        configs.append(config if isinstance(config, Mapping) else {})
    return configs


def service_name(spec: Mapping[str, Any]) -> str | None:
    """spec.kubernetes.service.name, or None."""
    kube = spec.get("kubernetes") or {}
    service = kube.get("service") or {} if isinstance(kube, Mapping) else {}
    name = service.get("name") if isinstance(service, Mapping) else None
    return str(name) if name else None


def workload_info(obj: Mapping[str, Any]) -> WorkloadInfo:
    """Routing view of a Workload object (API JSON)."""
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    namespace = str(meta.get("namespace") or "default")
    svc = service_name(spec)
    names = http_routing.route_names(handler_configs(spec), namespace=namespace, service=svc)
    return WorkloadInfo(
        namespace=namespace,
        name=str(meta.get("name", "")),
        host_id=str(status.get("hostId") or ""),
        ready=_condition_status(obj, "Ready") is True and not meta.get("deletionTimestamp"),
        hostnames=names,
        service=svc,
    )


def build_table(hosts: Iterable[HostInfo], workloads: Iterable[WorkloadInfo]) -> RoutingTable:
    """Route every hostname of every serving workload to the endpoint of the host it runs on."""
    by_id = {h.host_id: h for h in hosts if h.ready is not False}
    routes: dict[str, set[Backend]] = {}
    services: dict[ServiceKey, set[Backend]] = {}
    for wl in workloads:
        if not wl.ready or not wl.host_id:
            continue
        host = by_id.get(wl.host_id)
        if host is None:
            continue
        backend = Backend(host.hostname, host.http_port, host.host_id, host.name)
        for name in wl.hostnames:
            routes.setdefault(name, set()).add(backend)
        if wl.service:
            services.setdefault(ServiceKey(wl.namespace, wl.service), set()).add(backend)
    return RoutingTable(
        routes={k: tuple(sorted(v)) for k, v in routes.items()},
        services={k: tuple(sorted(v)) for k, v in services.items()},
    )
