"""EndpointSlices for workloads that set ``kubernetes.service``: the hosts serving that Service.

Kubernetes clients (service meshes, ingress controllers, other tools reading EndpointSlices) can then find
the wasm workload like any Service's pods. One slice per (Service, address type, port): EndpointSlice ports
apply to every endpoint in the slice, and hosts may listen on different ports (they do on one machine).

Slices are named deterministically (``<svc>-wasmfleet-<addresstype>-<port>``) and labelled as managed by
the gateway; a sync computes the desired set from the routing table, writes what differs and deletes
managed slices nobody wants any more. Writes are idempotent, so several gateways converge.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any

from wasmfleet.api import groups
from wasmfleet.gateway import routes
from wasmfleet.kube import client, errors, rest_paths

log = logging.getLogger(__name__)

ENDPOINTSLICES = rest_paths.Resource("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice")
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
MANAGED_BY = "gateway.wasmfleet.dev"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"

Obj = dict[str, Any]


def desired_slices(services: Mapping[routes.ServiceKey, tuple[routes.Backend, ...]]) -> dict[tuple[str, str], Obj]:
    """(namespace, name) -> EndpointSlice body, for every Service with at least one serving host."""
    out: dict[tuple[str, str], Obj] = {}
    for key, backends in services.items():
        groups_: dict[tuple[str, int], list[routes.Backend]] = {}
        for b in backends:
            groups_.setdefault((routes.address_type(b.address), b.port), []).append(b)
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
    return out


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

    def update(self, table: routes.RoutingTable) -> None:
        if table.services != self._services:
            self._services = table.services
            self._wake.set()

    async def sync(self) -> None:
        wanted = desired_slices(self._services)
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
