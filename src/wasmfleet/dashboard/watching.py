"""One informer per kind, shared by every page and every browser tab, and a change signal for them.

The dashboard lists and watches each kind once (through `kube.informing`, which relists after a 410 and
keeps serving its last state while the API server is away). Browser tabs never cause API requests of
their own: they wait on `FleetWatch.changed`, which wakes every waiter after any event, so the cost on
the API server is one watch per kind however many tabs are open.

Secrets are deliberately not among the kinds: the dashboard never reads them, so it cannot show them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

from wasmfleet.kube import client, informing, rest_paths

KINDS: tuple[rest_paths.Resource, ...] = (
    rest_paths.HOSTS,
    rest_paths.WORKLOADS,
    rest_paths.DEPLOYMENTS,
    rest_paths.REPLICASETS,
    rest_paths.EVENTS,
)
"""What the dashboard watches. Never Secrets (and not ConfigMaps: their values are not its business)."""


class FleetWatch:
    """The informers and a generation counter bumped on every change."""

    def __init__(self, kube: client.KubeClient, namespace: str | None = None,
                 kinds: Sequence[rest_paths.Resource] = KINDS) -> None:
        self.informers = {res.kind: informing.Informer(kube, res, namespace) for res in kinds}
        self.generation = 0
        """Bumped on every event of any kind; a page whose generation is current needs no re-render."""
        self._changed = asyncio.Event()
        """Set (and replaced by a fresh one) on every event: whoever waits on the old one wakes."""
        for informer in self.informers.values():
            informer.add_handler(self._on_event)

    def objects(self, kind: str) -> list[client.Obj]:
        return self.informers[kind].list()

    def get(self, kind: str, namespace: str, name: str) -> client.Obj | None:
        return self.informers[kind].get(f"{namespace}/{name}")

    def _on_event(self, _type: str, _obj: client.Obj) -> None:
        self.generation += 1
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_change(self, seen: int, timeout_s: float) -> int:
        """Wait until the generation differs from `seen` (or `timeout_s` passes); returns the current one.
        A burst of events (a relist, a rollout) wakes a waiter once: it reads the newest generation."""
        if self.generation == seen:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout_s)
        return self.generation

    async def wait_synced(self) -> None:
        for informer in self.informers.values():
            await informer.wait_synced()

    async def run(self) -> None:
        """Run every informer until cancelled."""
        tasks = [asyncio.create_task(i.run(), name=f"dashboard-watch-{k}") for k, i in self.informers.items()]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.wait(tasks)
