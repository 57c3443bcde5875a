"""Filters: each decides whether one host can take one workload, and says why not.

A filter returns None when the host passes, or a short human reason when it does not. The order of
`FILTERS` is the order reasons are reported in, cheapest and most fundamental first.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from wasmfleet.scheduler import candidates

Filter = Callable[[candidates.HostCandidate, candidates.Requirements], str | None]


def ready(host: candidates.HostCandidate, req: candidates.Requirements) -> str | None:
    return None if host.ready else "host is not Ready"


def pinned_host(host: candidates.HostCandidate, req: candidates.Requirements) -> str | None:
    if not req.host_id or req.host_id in (host.host_id, host.name):
        return None
    return f"workload is pinned to host {req.host_id}"


def selector_matches(selector: candidates.LabelSelector, labels: Mapping[str, str]) -> str | None:
    """None when `labels` satisfy `selector`, else the first unmet term."""
    for key, value in sorted(selector.match_labels.items()):
        if labels.get(key) != value:
            return f"label {key}={value} not present"
    for expr in selector.match_expressions:
        has = expr.key in labels
        op = expr.operator
        if op == "In" and (not has or labels[expr.key] not in expr.values):
            return f"label {expr.key} not in {list(expr.values)}"
        if op == "NotIn" and has and labels[expr.key] in expr.values:
            return f"label {expr.key} in {list(expr.values)}"
        if op == "Exists" and not has:
            return f"label {expr.key} missing"
        if op == "DoesNotExist" and has:
            return f"label {expr.key} present"
    return None


def host_selector(host: candidates.HostCandidate, req: candidates.Requirements) -> str | None:
    return selector_matches(req.host_selector, host.labels)


def environment(host: candidates.HostCandidate, req: candidates.Requirements) -> str | None:
    if not req.environment or req.environment == host.environment:
        return None
    return f"environment {host.environment or '(none)'} is not {req.environment}"


def versions_compatible(wanted: str | None, offered: str | None) -> bool:
    """Semver compatibility as WIT packages use it: same major, and same minor while major is 0.

    Pre-release versions (e.g. 0.2.0-draft) must match exactly, since drafts break freely.
    """
    if wanted is None or offered is None:
        return True
    if "-" in wanted or "-" in offered:
        return wanted == offered
    w, o = wanted.split("."), offered.split(".")
    if w[0] != o[0]:
        return False
    return w[0] != "0" or (w[1:2] == o[1:2])


def interfaces(host: candidates.HostCandidate, req: candidates.Requirements) -> str | None:
    missing = []
    for want in sorted(req.interfaces, key=lambda i: (i.namespace, i.package, i.interface)):
        if not any(
            have.namespace == want.namespace
            and have.package == want.package
            and have.interface == want.interface
            and versions_compatible(want.version, have.version)
            for have in host.interfaces
        ):
            version = f"@{want.version}" if want.version else ""
            missing.append(f"{want.namespace}:{want.package}/{want.interface}{version}")
    return f"does not provide {', '.join(missing)}" if missing else None


def capacity(host: candidates.HostCandidate, req: candidates.Requirements) -> str | None:
    if host.capacity and host.load >= host.capacity:
        return f"host is full ({host.load}/{host.capacity} workloads)"
    return None


FILTERS: tuple[tuple[str, Filter], ...] = (
    ("Ready", ready),
    ("HostId", pinned_host),
    ("HostSelector", host_selector),
    ("Environment", environment),
    ("Interfaces", interfaces),
    ("Capacity", capacity),
)
