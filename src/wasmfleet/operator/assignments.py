"""Which workload runs on which host, as the operator knows it: the scheduler's load figures.

Fed from two sides: Workload objects (status.hostId, via the informer) and placement decisions
made a moment ago whose status write has not come back through the watch yet. Without the second
side, many workloads placed at once would all see the same stale loads and pile onto one host.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass


@dataclass(frozen=True)
class Assignment:
    host_id: str
    group: str  # the owning ReplicaSet's uid ("" for a standalone Workload)
    key: str  # namespace/name of the Workload


class Assignments:
    """The book, with per-host and per-group counts kept up to date on every change (the scheduler
    reads them for each placement, so recounting thousands of entries each time would be quadratic)."""

    def __init__(self) -> None:
        self._by_uid: dict[str, Assignment] = {}
        self._load: Counter[str] = Counter()  # host ID -> workloads
        self._groups: dict[str, Counter[str]] = {}  # group -> host ID -> replicas
        self._keys: dict[str, dict[str, str]] = {}  # host ID -> uid -> key

    def set(self, uid: str, host_id: str | None, group: str, key: str) -> None:
        if not host_id:
            self.drop(uid)
            return
        new = Assignment(host_id, group, key)
        old = self._by_uid.get(uid)
        if old == new:
            return
        if old is not None:
            self._remove(uid, old)
        self._by_uid[uid] = new
        self._load[host_id] += 1
        if group:
            self._groups.setdefault(group, Counter())[host_id] += 1
        self._keys.setdefault(host_id, {})[uid] = key

    def drop(self, uid: str) -> None:
        old = self._by_uid.pop(uid, None)
        if old is not None:
            self._remove(uid, old)

    def _remove(self, uid: str, old: Assignment) -> None:
        self._load[old.host_id] -= 1
        if self._load[old.host_id] <= 0:
            del self._load[old.host_id]
        if old.group:
            counts = self._groups[old.group]
            counts[old.host_id] -= 1
            if counts[old.host_id] <= 0:
                del counts[old.host_id]
            if not counts:
                del self._groups[old.group]
        keys = self._keys.get(old.host_id, {})
        keys.pop(uid, None)
        if not keys:
            self._keys.pop(old.host_id, None)

    def get(self, uid: str) -> Assignment | None:
        return self._by_uid.get(uid)

    def load(self) -> Counter[str]:
        """host ID -> number of workloads assigned to it (a copy)."""
        return Counter(self._load)

    def load_on(self, host_id: str) -> int:
        return self._load.get(host_id, 0)

    def group_counts(self, group: str) -> Counter[str]:
        """host ID -> replicas of `group` assigned to it."""
        if not group:
            return Counter()
        return Counter(self._groups.get(group, {}))

    def keys_on(self, host_id: str) -> list[str]:
        return list(self._keys.get(host_id, {}).values())

    def uids_on(self, host_id: str) -> list[str]:
        return list(self._keys.get(host_id, {}))
