"""Reading objects from an informer's cache without acting on data older than our own writes.

A controller that writes an object and is then triggered again must not read a cached copy from
before that write (it could, say, place a workload twice). `FreshReader` remembers the
resourceVersion each of our writes returned; until the informer has delivered that version, reads of
the key go to the API server; afterwards the cache is used (saving a GET on most reconciles).
"""

from __future__ import annotations

from wasmfleet.kube import client, errors, informing, rest_paths


class FreshReader:
    def __init__(self, kube: client.KubeClient, informer: informing.Informer) -> None:
        self._kube = kube
        self._informer = informer
        self._pending: dict[str, str] = {}  # key -> resourceVersion of our last unseen write
        informer.add_handler(self._observe)

    def _observe(self, event: str, obj: client.Obj) -> None:
        key = rest_paths.key_of(obj)
        if event == "DELETED" or self._pending.get(key) == obj["metadata"].get("resourceVersion"):
            self._pending.pop(key, None)

    def wrote(self, obj: client.Obj) -> client.Obj:
        """Record a write's result (returns it, for chaining)."""
        self._pending[rest_paths.key_of(obj)] = str(obj["metadata"].get("resourceVersion", ""))
        return obj

    async def read(self, key: str) -> client.Obj | None:
        """The object (None when it does not exist), at least as new as our last write."""
        if key not in self._pending:
            cached = self._informer.get(key)
            if cached is not None:
                return cached
        ns, name = rest_paths.split_key(key)
        try:
            return await self._kube.get(self._informer.resource, ns, name)
        except errors.NotFound:
            return None
