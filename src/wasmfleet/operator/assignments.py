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
    def __init__(self) -> None:
        self._by_uid: dict[str, Assignment] = {}

    def set(self, uid: str, host_id: str | None, group: str, key: str) -> None:
        if host_id:
            self._by_uid[uid] = Assignment(host_id, group, key)
        else:
            self._by_uid.pop(uid, None)

    def drop(self, uid: str) -> None:
        self._by_uid.pop(uid, None)

    def get(self, uid: str) -> Assignment | None:
        return self._by_uid.get(uid)

    def load(self) -> Counter[str]:
        """host ID -> number of workloads assigned to it."""
        return Counter(a.host_id for a in self._by_uid.values())

    def group_counts(self, group: str) -> Counter[str]:
        """host ID -> replicas of `group` assigned to it."""
        if not group:
            return Counter()
        return Counter(a.host_id for a in self._by_uid.values() if a.group == group)

    def keys_on(self, host_id: str) -> list[str]:
        return [a.key for a in self._by_uid.values() if a.host_id == host_id]

    def uids_on(self, host_id: str) -> list[str]:
        return [uid for uid, a in self._by_uid.items() if a.host_id == host_id]
