"""Keeps the proxy's routing table current from a list + watch of Hosts and Workloads.

Reuses the shared informers (`wasmfleet.kube.informing`): they list, watch from the list's version,
relist after a 410 and keep serving the last known state while the API server is away, which is what a
data plane wants (an API outage must not empty the routing table).

Every change marks the table dirty; one task rebuilds it from both caches and swaps it in whole. Bursts of
events (a relist, a rollout) coalesce into one rebuild.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from wasmfleet.gateway import routes
from wasmfleet.kube import client, informing, rest_paths

log = logging.getLogger(__name__)

TableSink = Callable[[routes.RoutingTable], None]


class RouteWatcher:
    def __init__(self, kube: client.KubeClient, sinks: list[TableSink], namespace: str | None = None) -> None:
        self.hosts = informing.Informer(kube, rest_paths.HOSTS, namespace)
        self.workloads = informing.Informer(kube, rest_paths.WORKLOADS, namespace)
        self._sinks = sinks
        self._dirty = asyncio.Event()
        self.table = routes.RoutingTable()
        self.rebuilds = 0
        for informer in (self.hosts, self.workloads):
            informer.add_handler(lambda _kind, _obj: self._dirty.set())

    def build(self) -> routes.RoutingTable:
        hosts = [h for h in (routes.host_info(o) for o in self.hosts.list()) if h is not None]
        workloads = [routes.workload_info(o) for o in self.workloads.list()]
        return routes.build_table(hosts, workloads)

    async def run(self) -> None:
        """Run both informers and rebuild on change, until cancelled."""
        tasks = [asyncio.create_task(i.run()) for i in (self.hosts, self.workloads)]
        try:
            await self.hosts.wait_synced()
            await self.workloads.wait_synced()
            self._publish()
            while True:
                await self._dirty.wait()
                self._dirty.clear()
                self._publish()
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    def _publish(self) -> None:
        table = self.build()
        self.rebuilds += 1
        if table != self.table:
            log.info(
                "routes: %s",
                ", ".join(f"{name} -> {len(bs)}" for name, bs in sorted(table.routes.items())) or "none",
            )
        self.table = table
        for sink in self._sinks:
            sink(table)
