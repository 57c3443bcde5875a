"""EndpointSlices for workloads that set ``kubernetes.service``: the hosts serving that Service.

Kubernetes clients (service meshes, ingress controllers, other tools reading EndpointSlices) can then find
the wasm workload like any Service's pods. One slice per (Service, address type, port): EndpointSlice ports
apply to every endpoint in the slice, and hosts may listen on different ports (they do on one machine).

Slices are named deterministically (``<svc>-wasmfleet-<addresstype>-<port>``) and labelled as managed by
the gateway; a sync computes the desired set from the routing table, writes what differs and deletes
managed slices nobody wants any more. Writes are idempotent, so several gateways converge.

A host whose address Kubernetes refuses in an EndpointSlice (loopback, link-local, unspecified, a name
that is not a fully qualified domain name: `wasmfleet.api.endpoint_addresses`) is left out of the slice,
and the gateway warns once per host and address (not on every resync or retry): on a cluster, hosts
should advertise their pod IP (``wasmfleet host --hostname``, ``WASMFLEET_HOSTNAME``). Traffic through
the gateway still reaches such a host; only Kubernetes clients of the Service do not see it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from wasmfleet.api import endpoint_addresses, groups
from wasmfleet.gateway import routes
from wasmfleet.kube import client, errors, rest_paths

log = logging.getLogger(__name__)

ENDPOINTSLICES = rest_paths.Resource("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice")
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
MANAGED_BY = "gateway.wasmfleet.dev"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"

Obj = dict[str, Any]


@dataclass(frozen=True)
class Refused:
    """A serving host left out of a Service's slices because Kubernetes would refuse its address."""

    service: routes.ServiceKey
    backend: routes.Backend
    reasons: tuple[str, ...]


def desired_slices(
    services: Mapping[routes.ServiceKey, tuple[routes.Backend, ...]],
) -> tuple[dict[tuple[str, str], Obj], list[Refused]]:
    """(namespace, name) -> EndpointSlice body, for every Service with at least one host whose address
    a slice may hold; and the hosts left out for their address."""
    out: dict[tuple[str, str], Obj] = {}
    refused: list[Refused] = []
    for key, backends in services.items():
        groups_: dict[tuple[str, int], list[routes.Backend]] = {}
        for b in backends:
            addr_type = endpoint_addresses.address_type(b.address)
            reasons = endpoint_addresses.problems(b.address.strip("[]"), addr_type)
            if reasons:
                refused.append(Refused(key, b, tuple(reasons)))
                continue
            groups_.setdefault((addr_type, b.port), []).append(b)
        for (addr_type, port), members in sorted(groups_.items()):
            name = f"{key.name}-wasmfleet-{addr_type.lower()}-{port}"
            endpoints = []
            for b in sorted(members):
                endpoint: Obj = {"addresses": [b.address.strip("[]")], "conditions": {"ready": True}}
                if b.host_name:
                    endpoint["targetRef"] = {
                        "apiVersion": groups.API_VERSION,
                        "kind": "Host",
                        "name": b.host_name,
                    }
                endpoints.append(endpoint)
            out[(key.namespace, name)] = {
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {
                    "name": name,
                    "namespace": key.namespace,
                    "labels": {SERVICE_NAME_LABEL: key.name, MANAGED_BY_LABEL: MANAGED_BY},
                },
                "addressType": addr_type,
                "endpoints": endpoints,
                "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
            }
    return out, refused


def _same(current: Obj, wanted: Obj) -> bool:
    return all(current.get(k) == wanted.get(k) for k in ("addressType", "endpoints", "ports")) and (
        (current.get("metadata") or {}).get("labels") == wanted["metadata"]["labels"]
    )


class EndpointSliceSync:
    """Writes desired slices; `update(table)` is cheap and may be called on every table change."""

    def __init__(self, kube: client.KubeClient, resync_s: float = 30.0) -> None:
        self._kube = kube
        self._resync_s = resync_s
        self._services: Mapping[routes.ServiceKey, tuple[routes.Backend, ...]] = {}
        self._wake = asyncio.Event()
        self.synced_once = asyncio.Event()
        self._warned: set[tuple[str, str]] = set()
        """(host, address) pairs already warned about: a bad address is reported once, not per sync."""

    def update(self, table: routes.RoutingTable) -> None:
        if table.services != self._services:
            self._services = table.services
            self._wake.set()

    async def sync(self) -> None:
        wanted, refused = desired_slices(self._services)
        self._warn(refused)
        current, _ = await self._kube.list(ENDPOINTSLICES, None, label_selector=f"{MANAGED_BY_LABEL}={MANAGED_BY}")
        have = {(o["metadata"].get("namespace", ""), o["metadata"]["name"]): o for o in current}
        for key, body in wanted.items():
            old = have.get(key)
            if old is None:
                await self._kube.create(ENDPOINTSLICES, key[0], body)
                log.info("endpointslice %s/%s created", *key)
            elif not _same(old, body):
                body = {
                    **body,
                    "metadata": {**body["metadata"], "resourceVersion": old["metadata"].get("resourceVersion")},
                }
                await self._kube.replace(ENDPOINTSLICES, body)
                log.info("endpointslice %s/%s updated", *key)
        for key in have.keys() - wanted.keys():
            await self._kube.delete(ENDPOINTSLICES, key[0], key[1])
            log.info("endpointslice %s/%s deleted", *key)

    def _warn(self, refused: list[Refused]) -> None:
        for item in refused:
            b = item.backend
            key = (b.host_name or b.host_id, b.address)
            if key in self._warned:
                continue
            self._warned.add(key)
            log.warning(
                "endpointslices: host %s advertises %r, which Kubernetes refuses in an EndpointSlice (%s); "
                "it is left out of Service %s/%s's slices (the gateway still routes to it). On a cluster, "
                "start hosts with their pod IP: wasmfleet host --hostname, or WASMFLEET_HOSTNAME from the "
                "downward API (status.podIP)",
                b.host_name or b.host_id, b.address, "; ".join(item.reasons),
                item.service.namespace, item.service.name,
            )

    async def run(self) -> None:
        """Sync on every change and every ``resync_s``; API errors are retried, never fatal."""
        failures = 0
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._resync_s)
            self._wake.clear()
            try:
                await self.sync()
                failures = 0
                self.synced_once.set()
            except errors.KubeError as exc:
                failures += 1
                delay = min(10.0, 0.5 * 2 ** min(failures, 5))
                log.warning("endpointslices: %s; retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                self._wake.set()
