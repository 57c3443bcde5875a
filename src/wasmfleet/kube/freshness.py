"""Reading objects from an informer's cache without acting on data older than our own writes.

A controller that writes an object and is then triggered again must not read a cached copy from
before that write (it could, say, place a workload twice). `FreshReader` remembers the object each
of our writes returned; until the informer has delivered that version, reads of the key return that
object (as new as our write; a later change by someone else arrives as an event of its own and
queues the key again, as for any cached read); afterwards the cache is used. At scale the watch
lags behind a busy controller, and every such read used to be a GET. Should the watch deliver our
version before the write's reply is handled, nothing is recorded; and a recorded write not seen
within WRITTEN_COPY_S is read from the API server, as before, rather than trusted any longer.
"""

from __future__ import annotations

import time

from wasmfleet.kube import client, errors, informing, rest_paths

WRITTEN_COPY_S = 5.0
"""How long the copy our write returned stands in for the cache (the watch normally catches up
within a second; this only bounds a missed echo)."""


class FreshReader:
    def __init__(self, kube: client.KubeClient, informer: informing.Informer) -> None:
        self._kube = kube
        self._informer = informer
        # key -> (what our last write returned, monotonic time of the write), until the watch shows it.
        self._pending: dict[str, tuple[client.Obj, float]] = {}
        informer.add_handler(self._observe)

    def _observe(self, event: str, obj: client.Obj) -> None:
        key = rest_paths.key_of(obj)
        pending = self._pending.get(key)
        if event == "DELETED" or (pending is not None and _caught_up(obj, pending[0])):
            self._pending.pop(key, None)

    def wrote(self, obj: client.Obj) -> client.Obj:
        """Record a write's result (returns it, for chaining)."""
        key = rest_paths.key_of(obj)
        cached = self._informer.get(key)
        if cached is not None and _caught_up(cached, obj):
            # The watch was quicker than the reply: the cache has our version, or a later one
            # (someone wrote after us, and that event may already have been handled: a copy of our
            # write would then be read as current with no event left to correct it).
            self._pending.pop(key, None)
        else:
            self._pending[key] = (obj, time.monotonic())
        return obj

    async def read(self, key: str) -> client.Obj | None:
        """The object (None when it does not exist), at least as new as our last write."""
        pending = self._pending.get(key)
        if pending is None:
            cached = self._informer.get(key)
            if cached is not None:
                return cached
        elif time.monotonic() - pending[1] < WRITTEN_COPY_S:
            return pending[0]
        ns, name = rest_paths.split_key(key)
        try:
            return await self._kube.get(self._informer.resource, ns, name)
        except errors.NotFound:
            return None


def _version(obj: client.Obj) -> str:
    return str(obj["metadata"].get("resourceVersion") or "")


def _caught_up(seen: client.Obj, written: client.Obj) -> bool:
    """Whether `seen` (from the watch) is our written version or a later one. resourceVersions are
    opaque to clients, but etcd's and the embedded server's are increasing integers; anything else
    is compared for equality only."""
    a, b = _version(seen), _version(written)
    if a == b:
        return True
    if a.isdigit() and b.isdigit():
        return int(a) > int(b)
    return False
