"""Watch fan-out: a bounded in-memory log of committed changes and the queues of live watchers.

Events enter only after their SQLite commit, in resourceVersion order, so a watcher never sees a change
that could still be lost. A watcher resuming from a resourceVersion older than the window (or from before
this process started) gets 410 Gone and must relist, exactly as with etcd compaction.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from wasmfleet.apiserver import errors

StoreKey = tuple[str, str]


class WatchEvent:
    """One committed change. The log keeps superseded versions only as JSON text: their dicts are dropped
    when the next change of the same object is published (and parsed again on the rare replay that needs
    them), so the watch window costs text, not a second copy of every object as Python dicts."""

    __slots__ = ("_obj", "_old", "key", "name", "namespace", "old_text", "rv", "text", "type")

    def __init__(self, rv: int, key: StoreKey, type_: str, obj: dict[str, Any], text: str,
                 old: dict[str, Any] | None, old_text: str | None, namespace: str, name: str) -> None:
        self.rv = rv
        self.key = key
        self.type = type_  # ADDED | MODIFIED | DELETED
        self._obj: dict[str, Any] | None = obj
        self.text = text
        self._old = old
        self.old_text = old_text
        self.namespace = namespace
        self.name = name

    @property
    def obj(self) -> dict[str, Any]:
        if self._obj is None:
            parsed: dict[str, Any] = json.loads(self.text)
            return parsed
        return self._obj

    @property
    def old(self) -> dict[str, Any] | None:
        if self._old is None and self.old_text is not None:
            parsed: dict[str, Any] = json.loads(self.old_text)
            return parsed
        return self._old

    def forget_dicts(self) -> None:
        self._obj = None
        self._old = None

    def line(self) -> str:
        """The JSON watch frame for the stored version. Not cached on the event: the log would then keep
        a second copy of every object; `publish` builds it once per event for all live watchers."""
        return '{"type":"' + self.type + '","object":' + self.text + "}\n"


@dataclass(eq=False)
class Subscriber:
    key: StoreKey
    namespace: str | None
    queue: asyncio.Queue[tuple[WatchEvent, str] | None] = field(default_factory=asyncio.Queue)
    overflowed: bool = False
    # Fast path for plain watchers: write the shared frame straight to the connection from `publish`
    # (no task wake-up per watcher per event). Returns False when it cannot (then the queue is used).
    sink: Callable[[bytes], bool] | None = None
    last_rv: int = 0


class WatchHub:
    def __init__(self, window: int, start_rv: int, max_backlog: int = 100_000) -> None:
        self._log: deque[WatchEvent] = deque()
        self._window = window
        # Changes at or below this version are not in the log (before start, or evicted).
        self.compacted_rv = start_rv
        self._subs: dict[StoreKey, set[Subscriber]] = {}
        self._max_backlog = max_backlog
        self._latest: dict[tuple[StoreKey, str, str], WatchEvent] = {}  # newest event per object

    def compact_to(self, rv: int) -> None:
        """Forget changes up to `rv` (the server's own bootstrap writes are not resumable)."""
        while self._log and self._log[0].rv <= rv:
            self._log.popleft()
        self.compacted_rv = max(self.compacted_rv, rv)

    def publish(self, events: list[WatchEvent]) -> None:
        for ev in events:
            self._log.append(ev)
            if len(self._log) > self._window:
                dropped = self._log.popleft()
                self.compacted_rv = dropped.rv
            ident = (ev.key, ev.namespace, ev.name)
            prev = self._latest.pop(ident, None)
            if prev is not None:
                prev.forget_dicts()
            if ev.type == "DELETED":
                ev.forget_dicts()
            else:
                self._latest[ident] = ev
                ev._old = None  # the previous version lives on as old_text
            line: str | None = None
            data: bytes | None = None
            for sub in self._subs.get(ev.key, ()):
                if sub.overflowed:
                    continue
                if sub.namespace is not None and ev.namespace != sub.namespace:
                    continue
                if sub.queue.qsize() >= self._max_backlog:
                    # A watcher this far behind is cut off (kube-apiserver does the same); it relists.
                    sub.overflowed = True
                    sub.queue.put_nowait(None)
                    continue
                if line is None:
                    line = ev.line()
                if sub.sink is not None and sub.queue.empty():
                    if data is None:
                        data = line.encode()
                    if sub.sink(data):
                        sub.last_rv = ev.rv
                        continue
                sub.queue.put_nowait((ev, line))

    def subscribe(
        self, key: StoreKey, namespace: str | None, since_rv: int | None
    ) -> tuple[list[WatchEvent], Subscriber]:
        """Replay of events after `since_rv` (None: no replay) and a live subscription, atomically."""
        replay: list[WatchEvent] = []
        if since_rv is not None:
            if since_rv < self.compacted_rv:
                raise errors.gone(f"too old resource version: {since_rv} ({self.compacted_rv})")
            for ev in self._log:
                if ev.rv > since_rv and ev.key == key and (namespace is None or ev.namespace == namespace):
                    replay.append(ev)
        sub = Subscriber(key, namespace)
        self._subs.setdefault(key, set()).add(sub)
        return replay, sub

    def unsubscribe(self, sub: Subscriber) -> None:
        subs = self._subs.get(sub.key)
        if subs is not None:
            subs.discard(sub)

    def close_all(self) -> None:
        for subs in self._subs.values():
            for sub in subs:
                sub.queue.put_nowait(None)
