"""Choosing a host for one workload replica: filter, then score, then explain.

Scoring, in order of precedence:
1. spread: fewest replicas of the same group (ReplicaSet) already on the host;
2. least loaded: fewest workloads assigned to the host;
3. a deterministic tie-break: a hash of (workload key, host name), so many equal hosts share
   concurrently placed workloads instead of all picking the alphabetically first one, while the same
   inputs always give the same answer.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from wasmfleet.scheduler import candidates, filters


@dataclass(frozen=True)
class Exclusion:
    """One host a filter refused, and why."""

    host: str
    filter: str
    reason: str


@dataclass(frozen=True)
class Decision:
    """The outcome of one placement: the chosen host (or None) and every exclusion."""

    host: candidates.HostCandidate | None
    exclusions: tuple[Exclusion, ...]
    considered: int

    def explain(self) -> str:
        """One line for a condition message and an Event: which filter excluded which hosts."""
        if self.host is not None:
            return f"placed on {self.host.name} ({self.considered} hosts considered)"
        if self.considered == 0:
            return "no suitable host found: no hosts are registered"
        by_filter: dict[str, list[Exclusion]] = {}
        for ex in self.exclusions:
            by_filter.setdefault(ex.filter, []).append(ex)
        parts = []
        for name, _ in filters.FILTERS:
            group = by_filter.get(name)
            if not group:
                continue
            reasons = sorted({ex.reason for ex in group})
            hosts = ", ".join(sorted(ex.host for ex in group)[:5])
            more = f" and {len(group) - 5} more" if len(group) > 5 else ""
            parts.append(f"{name} excluded {hosts}{more} ({'; '.join(reasons[:3])})")
        return "no suitable host found: " + "; ".join(parts)


def _tie_break(key: str, host_name: str) -> bytes:
    return hashlib.sha256(f"{key}\0{host_name}".encode()).digest()


def choose(
    req: candidates.Requirements,
    hosts: Iterable[candidates.HostCandidate],
    group_counts: Mapping[str, int] | None = None,
) -> Decision:
    """Pick the best host for `req` among `hosts`.

    `group_counts` maps host name -> replicas of `req.group` already placed there (for spreading).
    """
    group_counts = group_counts or {}
    exclusions: list[Exclusion] = []
    feasible: list[candidates.HostCandidate] = []
    pool = list(hosts)
    for host in pool:
        for name, check in filters.FILTERS:
            reason = check(host, req)
            if reason is not None:
                exclusions.append(Exclusion(host.name, name, reason))
                break
        else:
            feasible.append(host)
    if not feasible:
        return Decision(None, tuple(exclusions), len(pool))
    best = min(
        feasible,
        key=lambda h: (group_counts.get(h.name, 0), h.load, _tie_break(req.key, h.name)),
    )
    return Decision(best, tuple(exclusions), len(pool))


@dataclass(frozen=True)
class Move:
    """One replica of a group should move from `source` to `target` (host names)."""

    source: str
    target: str


def rebalance_move(
    req: candidates.Requirements,
    hosts: Iterable[candidates.HostCandidate],
    group_counts: Mapping[str, int],
) -> Move | None:
    """Whether a group's replicas are piled up: the host holding the most replicas of the group
    holds at least two more than some host that could take one (passes every filter). Then one
    replica should move from the former to the latter (the one `choose` would pick next); moving
    one at a time until this returns None leaves every eligible host within one replica of the
    others. Hosts that no longer suit the group are not sources here: their replicas are moved by
    the workload's own reconcile."""
    pool = list(hosts)
    eligible = [h for h in pool if all(check(h, req) is None for _, check in filters.FILTERS)]
    fits = [h for h in pool if still_fits(req, h) is None]
    if not eligible or not fits:
        return None
    source = max(fits, key=lambda h: (group_counts.get(h.name, 0), h.load, h.name))
    target = min(eligible, key=lambda h: (group_counts.get(h.name, 0), h.load, _tie_break(req.key, h.name)))
    if group_counts.get(source.name, 0) - group_counts.get(target.name, 0) < 2:
        return None
    return Move(source.name, target.name)


def still_fits(req: candidates.Requirements, host: candidates.HostCandidate) -> Exclusion | None:
    """Whether a host a workload already runs on still satisfies it (after a spec change, or a
    host's labels changed). Capacity is not re-checked: the workload is part of that load."""
    for name, check in filters.FILTERS:
        if name == "Capacity":
            continue
        reason = check(host, req)
        if reason is not None:
            return Exclusion(host.name, name, reason)
    return None

