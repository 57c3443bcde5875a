"""Recording core/v1 Events about objects (what `kubectl describe` and `kubectl get events` show).

Repeated identical events are folded into one object with a growing `count`, as kubelet and
controller-runtime do, so a workload stuck in a retry loop does not flood the API server. Recording
is best effort: a failed Event write is logged and never fails a reconcile.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import UTC, datetime

from wasmfleet.kube import client, errors, rest_paths

log = logging.getLogger(__name__)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class EventRecorder:
    def __init__(self, kube: client.KubeClient, component: str = "wasmfleet-operator") -> None:
        self._kube = kube
        self._component = component
        self._counts: dict[tuple[str, str], int] = {}  # (namespace, event name) -> count we wrote

    async def record(self, obj: client.Obj, type_: str, reason: str, message: str) -> None:
        """`type_` is "Normal" or "Warning"."""
        meta = obj["metadata"]
        namespace = meta.get("namespace") or "default"
        digest = hashlib.sha256(
            f"{obj.get('kind')}/{meta['name']}/{meta.get('uid')}/{type_}/{reason}/{message}".encode()
        ).hexdigest()[:16]
        name = f"{meta['name']}.{digest}"
        now = _now()
        if len(self._counts) > 10_000:
            self._counts.clear()  # bounded memory; a forgotten count is re-read from the API on conflict
        count = self._counts.get((namespace, name), 0) + 1
        events = rest_paths.EVENTS
        try:
            if count == 1:
                body = self._event(obj, name, namespace, type_, reason, message, now)
                try:
                    await self._kube.create(events, namespace, body)
                except errors.Conflict:
                    # Recorded by an earlier operator process: continue its count.
                    existing = await self._kube.get(events, namespace, name)
                    count = int(existing.get("count") or 1) + 1
                    await self._kube.patch(events, namespace, name, {"count": count, "lastTimestamp": now})
            else:
                await self._kube.patch(events, namespace, name, {"count": count, "lastTimestamp": now})
            self._counts[(namespace, name)] = count
        except errors.KubeError as exc:
            self._counts.pop((namespace, name), None)
            log.info("event %s %s on %s not recorded: %s", type_, reason, meta["name"], exc)

    def _event(
        self, obj: client.Obj, name: str, namespace: str, type_: str, reason: str, message: str, now: str
    ) -> client.Obj:
        meta = obj["metadata"]
        return {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": namespace},
            "involvedObject": {
                "apiVersion": obj.get("apiVersion"),
                "kind": obj.get("kind"),
                "name": meta["name"],
                "namespace": meta.get("namespace"),
                "uid": meta.get("uid"),
                "resourceVersion": meta.get("resourceVersion"),
            },
            "type": type_,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": self._component},
            "reportingComponent": self._component,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
