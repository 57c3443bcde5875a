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


SHARED_HOSTING_LABEL = "runtime.wasmcloud.dev/allow-shared-hosting"
"""Host label (value "true") by which a host with an environment also takes other environments'
workloads (`wasmfleet host --allow-shared-hosting`)."""


def allows_shared_hosting(labels: Mapping[str, str]) -> bool:
    return labels.get(SHARED_HOSTING_LABEL, "").lower() == "true"


def tenant(req: candidates.Requirements) -> str:
    """The environment a workload belongs to: spec.environment, else its namespace."""
    return req.environment or req.namespace


def environment(host: candidates.HostCandidate, req: candidates.Requirements) -> str | None:
    """Multi-tenancy (upstream 2.1): a host that advertises an environment runs only that
    environment's workloads, unless it allows shared hosting. A workload's environment is its
    spec.environment, else its namespace, so hosts started with `--environment <namespace>` (as the
    chart does) serve that namespace without every manifest naming it.

    A host without an environment is the shared pool of a fleet that does not use tenancy (every
    host `wasmfleet up` starts): it takes workloads that name no spec.environment. A workload that
    names one goes only to hosts of that environment or hosts that allow shared hosting.
    """
    wanted = tenant(req)
    if host.environment == wanted or host.shared:
        return None
    if not host.environment and not req.environment:
        return None
    if host.environment:
        return f"host is dedicated to environment {host.environment}, the workload's is {wanted or '(none)'}"
    return f"host has no environment and does not allow shared hosting; the workload's is {wanted}"


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
