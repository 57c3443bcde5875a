"""The rules that span fields, as pure functions over plain values.

The pydantic models call them (offline validation, exact messages) and so does `validation.check_rules`,
which the API server runs on bodies its schema check has already typed: one statement of each rule,
and the server skips re-parsing whole objects into models.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

InterfaceKey = tuple[str, str, str, str]  # namespace, package, name ("" if none), version ("" if none)


def host_interfaces(keys: Sequence[InterfaceKey]) -> str | None:
    """Upstream's hostInterfaces rules: shared namespace+package => every entry named; keys unique."""
    families = Counter((ns, pkg) for ns, pkg, _, _ in keys)
    for ns, pkg, name, _ in keys:
        count = families[(ns, pkg)]
        if count > 1 and not name:
            return f"{ns}:{pkg} appears {count} times, so every entry for it needs a name"
    seen: set[InterfaceKey] = set()
    for key in keys:
        if key in seen:
            ns, pkg, name, ver = key
            return f"duplicate entry {ns}:{pkg} (name={name or '-'}, version={ver or '-'})"
        seen.add(key)
    return None


def workload_spec(
    component_names: Sequence[str],
    has_service: bool,
    mounts: Sequence[tuple[str, str]],
    volume_names: set[str],
) -> str | None:
    """Components or a service; unique component names; every (owner, volume) mount names a volume."""
    if not component_names and not has_service:
        return "a workload needs at least one component or a service"
    dupes = sorted(n for n, k in Counter(component_names).items() if k > 1)
    if dupes:
        return f"components: duplicate component names {dupes}"
    for owner, volume in mounts:
        if volume not in volume_names:
            return f"{owner}: volumeMounts entry {volume!r} names no volume in spec.volumes"
    return None


def volume(name: str, has_ephemeral: bool, has_host_path: bool) -> str | None:
    if has_ephemeral == has_host_path:
        return f"volume {name!r}: exactly one of ephemeral or hostPath must be set"
    return None


HOST_ID_REQUIRED = "hostId is required"
