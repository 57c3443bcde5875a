"""Turning Host records and a Workload into scheduler inputs (the pure scheduler does the rest)."""

from __future__ import annotations

from wasmfleet.api import models
from wasmfleet.bus import messages
from wasmfleet.operator import assignments, hostregistry
from wasmfleet.scheduler import candidates, filters


def host_interfaces(hb: messages.HostHeartbeat) -> frozenset[candidates.Interface]:
    """What a host can link: its advertised imports and exports together (a workload's hostInterfaces
    mixes both: wasi:http incoming-handler is exported by the guest, wasi:keyvalue imported)."""
    return frozenset(
        candidates.Interface(wit.namespace, wit.package, iface, wit.version or None)
        for wit in [*hb.imports, *hb.exports]
        for iface in wit.interfaces
    )


def _interfaces_of(rec: hostregistry.HostRecord) -> frozenset[candidates.Interface]:
    """The record's interface set, built once per advertisement: a host advertises the same
    interfaces beat after beat, and the set is needed for every placement decision (the registry
    drops it when a heartbeat advertises something else)."""
    if rec.interfaces is None:
        rec.interfaces = host_interfaces(rec.heartbeat)
    return rec.interfaces


def host_candidates(
    registry: hostregistry.HostRegistry, book: assignments.Assignments
) -> list[candidates.HostCandidate]:
    out = []
    for rec in registry.records():
        if rec.superseded:
            continue
        hb = rec.heartbeat
        out.append(
            candidates.HostCandidate(
                name=rec.name,
                host_id=hb.id,
                ready=registry.liveness(hb.id) is hostregistry.Liveness.ALIVE,
                labels=dict(hb.labels),
                environment=hb.environment,
                interfaces=_interfaces_of(rec),
                load=book.load_on(hb.id),
                shared=filters.allows_shared_hosting(hb.labels),
            )
        )
    return out


def requirements(key: str, spec: models.WorkloadSpec, group: str) -> candidates.Requirements:
    wanted = frozenset(
        candidates.Interface(hi.namespace, hi.package, iface, hi.version or None)
        for hi in spec.host_interfaces
        for iface in hi.interfaces
    )
    return candidates.Requirements(
        key=key,
        host_selector=candidates.LabelSelector(match_labels=dict(spec.host_selector)),
        environment=spec.environment or "",
        host_id=spec.host_id or "",
        interfaces=wanted,
        group=group,
        namespace=key.split("/", 1)[0],  # the workload's tenant when spec.environment is empty
    )


def hosts_running_unplaced(registry: hostregistry.HostRegistry, book: assignments.Assignments) -> list[str]:
    """Live hosts whose last heartbeat reports more workloads than are placed on them: they run a
    copy nobody placed there (left from before a partition), or a stop has not shown in a
    heartbeat yet. The Workload controller's audit finds and stops such copies."""
    return [
        rec.heartbeat.id for rec in registry.records()
        if rec.heartbeat.workload_count > book.load_on(rec.heartbeat.id)
        and registry.liveness(rec.heartbeat.id) is hostregistry.Liveness.ALIVE
    ]
