"""What each page shows, computed from the watched objects: pure functions, no I/O, no HTML.

Objects are the API server's JSON dicts. Only fields meant for display are read: names, placement,
replica counts, conditions, component names and images, interface names, the route hostnames. Config
values of interfaces (other than the HTTP route names) and anything from Secrets never reach a view.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from wasmfleet.api import groups
from wasmfleet.bus import http_routing

Obj = Mapping[str, Any]
NO_GROUP = "(no group)"


@dataclass(frozen=True)
class Condition:
    type: str
    status: str
    reason: str
    message: str


def conditions(obj: Obj) -> list[Condition]:
    return [Condition(str(c.get("type", "")), str(c.get("status", "Unknown")), str(c.get("reason") or ""),
                      str(c.get("message") or ""))
            for c in (obj.get("status") or {}).get("conditions") or [] if isinstance(c, dict)]


def is_ready(obj: Obj) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in conditions(obj))


def _meta(obj: Obj) -> Mapping[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, dict) else {}


def host_id_of(host: Obj) -> str:
    return str(host.get("hostId") or (host.get("spec") or {}).get("hostId") or _meta(host).get("name") or "")


# ------------------------------------------------------------------------------------------------- hosts


@dataclass(frozen=True)
class HostRow:
    name: str
    host_id: str
    group: str
    ready: bool
    ready_message: str
    cpu_percent: float | None
    memory_used: int | None
    memory_total: int | None
    workloads: int
    """Workload objects placed on this host (what the API says), not the host's own count."""
    ready_workloads: int
    last_seen: str

    @property
    def memory_percent(self) -> float | None:
        if not self.memory_total or self.memory_used is None:
            return None
        return 100.0 * self.memory_used / self.memory_total


def _float(value: object) -> float | None:
    try:
        return float(str(value))
    except ValueError:
        return None


def host_rows(hosts: Iterable[Obj], workloads: Iterable[Obj]) -> list[HostRow]:
    placed: Counter[str] = Counter()
    ready: Counter[str] = Counter()
    for w in workloads:
        host_id = str((w.get("status") or {}).get("hostId") or "")
        if host_id and not _meta(w).get("deletionTimestamp"):
            placed[host_id] += 1
            ready[host_id] += is_ready(w)
    rows = []
    for h in hosts:
        status = h.get("status") or {}
        meta = _meta(h)
        labels = meta.get("labels") or {}
        host_id = host_id_of(h)
        total, free = status.get("systemMemoryTotal"), status.get("systemMemoryFree")
        ready_cond = next((c for c in conditions(h) if c.type == "Ready"), None)
        rows.append(HostRow(
            name=str(meta.get("name", "")), host_id=host_id, group=str(labels.get(groups.LABEL_HOSTGROUP) or NO_GROUP),
            ready=ready_cond is not None and ready_cond.status == "True",
            ready_message=(ready_cond.message or ready_cond.reason) if ready_cond else "no Ready condition yet",
            cpu_percent=_float(status.get("systemCPUUsage")) if status.get("systemCPUUsage") is not None else None,
            memory_used=int(total) - int(free) if isinstance(total, int) and isinstance(free, int) else None,
            memory_total=int(total) if isinstance(total, int) else None,
            workloads=placed[host_id], ready_workloads=ready[host_id],
            last_seen=str(status.get("lastSeen") or ""),
        ))
    return sorted(rows, key=lambda r: (r.group, r.name))


def by_group(rows: Iterable[HostRow]) -> dict[str, list[HostRow]]:
    grouped: dict[str, list[HostRow]] = defaultdict(list)
    for row in rows:
        grouped[row.group].append(row)
    return dict(sorted(grouped.items()))


# ------------------------------------------------------------------------------------------- deployments


@dataclass(frozen=True)
class DeploymentRow:
    namespace: str
    name: str
    desired: int
    current: int
    ready: int
    unavailable: int
    rollout: str
    """Empty when settled; else what is in progress, e.g. "hello-5d8f -> hello-7c2a"."""
    conditions: list[Condition]


def deployment_rows(deployments: Iterable[Obj]) -> list[DeploymentRow]:
    rows = []
    for d in deployments:
        meta, spec, status = _meta(d), d.get("spec") or {}, d.get("status") or {}
        counts = status.get("replicas") or {}
        desired = int(spec.get("replicas", 1) if spec.get("replicas") is not None else 1)
        ready = int(counts.get("ready", 0))
        rollout = ""
        previous, current = status.get("previousReplicaSet"), status.get("currentReplicaSet")
        if previous:
            rollout = f"{previous} -> {current or '(new)'}"
        elif status.get("observedGeneration") is not None and int(status["observedGeneration"]) < int(
                meta.get("generation", 0)):
            rollout = "new spec not yet observed"
        elif ready < desired:
            rollout = f"waiting for {desired - ready} replica(s) to be Ready"
        rows.append(DeploymentRow(str(meta.get("namespace", "")), str(meta.get("name", "")), desired,
                                  int(status.get("currentReplicas", counts.get("current", 0)) or 0), ready,
                                  int(counts.get("unavailable", max(desired - ready, 0))), rollout, conditions(d)))
    return sorted(rows, key=lambda r: (r.namespace, r.name))


# --------------------------------------------------------------------------------------------- workloads


@dataclass(frozen=True)
class Component:
    name: str
    image: str
    role: str
    state: str


@dataclass(frozen=True)
class WorkloadRow:
    namespace: str
    name: str
    uid: str
    deployment: str
    host_id: str
    host_name: str
    ready: bool
    deleting: bool
    conditions: list[Condition]
    components: list[Component]
    interfaces: list[str]
    routes: tuple[str, ...]
    workload_id: str = ""
    """The ID the host knows it by (status.workloadId, else the uid): the label of host metrics."""


def display_image(image: str) -> str:
    """An image reference without userinfo or query (a signed URL's token is not for display)."""
    parts = urlsplit(image)
    if not parts.scheme or not parts.netloc:
        return image
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def route_names(workload: Obj) -> tuple[str, ...]:
    """The Host names the gateway routes to this workload (the `route` label of its metrics)."""
    spec = workload.get("spec") or {}
    configs = [e.get("config") or {} for e in spec.get("hostInterfaces") or [] if isinstance(e, dict)
               and http_routing.is_http_handler(str(e.get("namespace", "")), str(e.get("package", "")),
                                                [str(i) for i in e.get("interfaces") or []])]
    service = ((spec.get("kubernetes") or {}).get("service") or {}).get("name")
    return http_routing.route_names(configs, namespace=str(_meta(workload).get("namespace", "")),
                                    service=str(service) if service else None)


def workload_row(w: Obj, host_names: Mapping[str, str]) -> WorkloadRow:
    meta, spec, status = _meta(w), w.get("spec") or {}, w.get("status") or {}
    labels = meta.get("labels") or {}
    reported = {str(c.get("name")): c for c in status.get("components") or [] if isinstance(c, dict)}
    components = [Component(str(c.get("name", "")), display_image(str(c.get("image", ""))),
                             str(reported.get(str(c.get("name")), {}).get("role", "")),
                             str(reported.get(str(c.get("name")), {}).get("state", "")))
                  for c in spec.get("components") or [] if isinstance(c, dict)]
    interfaces = []
    for entry in spec.get("hostInterfaces") or []:
        if isinstance(entry, dict):
            names = ",".join(str(i) for i in entry.get("interfaces") or [])
            interfaces.append(f"{entry.get('namespace', '')}:{entry.get('package', '')}/{names}")
    host_id = str(status.get("hostId") or "")
    return WorkloadRow(
        namespace=str(meta.get("namespace", "")), name=str(meta.get("name", "")), uid=str(meta.get("uid", "")),
        deployment=str(labels.get(groups.LABEL_WORKLOAD_DEPLOYMENT, "")), host_id=host_id,
        host_name=host_names.get(host_id, ""), ready=is_ready(w), deleting=bool(meta.get("deletionTimestamp")),
        conditions=conditions(w), components=components, interfaces=interfaces, routes=route_names(w),
        workload_id=str(status.get("workloadId") or meta.get("uid") or ""),
    )


def host_name_index(hosts: Iterable[Obj]) -> dict[str, str]:
    return {host_id_of(h): str(_meta(h).get("name", "")) for h in hosts}


def workload_rows(workloads: Iterable[Obj], hosts: Iterable[Obj]) -> list[WorkloadRow]:
    names = host_name_index(hosts)
    return sorted((workload_row(w, names) for w in workloads), key=lambda r: (r.namespace, r.name))


# ------------------------------------------------------------------------------------------------ events


@dataclass(frozen=True)
class EventRow:
    time: str
    type: str
    reason: str
    object: str
    message: str
    count: int


def event_rows(events: Iterable[Obj], limit: int = 200) -> list[EventRow]:
    rows = []
    for e in events:
        involved = e.get("involvedObject") or e.get("regarding") or {}
        when = str(e.get("lastTimestamp") or e.get("eventTime") or e.get("firstTimestamp")
                   or _meta(e).get("creationTimestamp") or "")
        rows.append(EventRow(when, str(e.get("type", "")), str(e.get("reason", "")),
                             f"{involved.get('kind', '')}/{involved.get('name', '')}",
                             str(e.get("message") or e.get("note") or ""), int(e.get("count") or 1)))
    rows.sort(key=lambda r: r.time, reverse=True)  # RFC 3339 UTC times sort as strings
    return rows[:limit]


# --------------------------------------------------------------------------------------------- placement


@dataclass
class Placement:
    """Replicas per (host, deployment): rows are hosts, columns deployments (or standalone workloads)."""

    hosts: list[HostRow]
    columns: list[str]
    cells: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    """(host ID, column) -> names of the replicas placed there."""
    unplaced: dict[str, list[str]] = field(default_factory=dict)
    """column -> replicas with no host yet."""

    def count(self, host_id: str, column: str) -> int:
        return len(self.cells.get((host_id, column), []))


def placement(host_list: list[HostRow], workloads: Iterable[WorkloadRow]) -> Placement:
    result = Placement(host_list, [])
    columns: set[str] = set()
    for w in workloads:
        if w.deleting:
            continue
        column = f"{w.namespace}/{w.deployment}" if w.deployment else f"{w.namespace}/{w.name}"
        columns.add(column)
        if w.host_id:
            result.cells.setdefault((w.host_id, column), []).append(w.name)
        else:
            result.unplaced.setdefault(column, []).append(w.name)
    result.columns = sorted(columns)
    return result
