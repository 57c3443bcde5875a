"""Legacy (non-aggregated) discovery documents: /version, /api, /apis, APIResourceLists."""

from __future__ import annotations

from typing import Any

from wasmfleet import __version__
from wasmfleet.apiserver.resource_types import ResourceType
from wasmfleet.apiserver.served_types import Registry

KUBE_MINOR = "37"


def version() -> dict[str, Any]:
    return {
        "major": "1", "minor": KUBE_MINOR, "gitVersion": f"v1.{KUBE_MINOR}.0+wasmfleet-{__version__}",
        "gitCommit": "", "gitTreeState": "clean", "buildDate": "1970-01-01T00:00:00Z",
        "goVersion": "python", "compiler": "wasmfleet", "platform": "linux/amd64",
    }


def core_versions(server_address: str) -> dict[str, Any]:
    return {
        "kind": "APIVersions", "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    }


def _preferred(registry: Registry, group: str, versions: list[str]) -> str:
    # The storage version of a CRD is the natural preference; otherwise the first served one.
    for rt in registry.all_types():
        if rt.group == group and not rt.builtin and rt.version == rt.storage_version:
            return rt.version
    return versions[0]


def group_list(registry: Registry) -> dict[str, Any]:
    groups: dict[str, list[str]] = {}
    for group, ver in registry.group_versions():
        if group:
            groups.setdefault(group, []).append(ver)
    items = []
    for group, versions in sorted(groups.items()):
        pref = _preferred(registry, group, versions)
        items.append({
            "name": group,
            "versions": [{"groupVersion": f"{group}/{v}", "version": v} for v in versions],
            "preferredVersion": {"groupVersion": f"{group}/{pref}", "version": pref},
        })
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": items}


def group(registry: Registry, name: str) -> dict[str, Any] | None:
    for item in group_list(registry)["groups"]:
        if item["name"] == name:
            return {"kind": "APIGroup", "apiVersion": "v1", **item}
    return None


def _entries(rt: ResourceType) -> list[dict[str, Any]]:
    main: dict[str, Any] = {
        "name": rt.plural, "singularName": rt.singular, "namespaced": rt.namespaced, "kind": rt.kind,
        "verbs": list(rt.verbs),
    }
    if rt.short_names:
        main["shortNames"] = list(rt.short_names)
    if rt.categories:
        main["categories"] = list(rt.categories)
    out = [main]
    sub_verbs = ["get", "patch", "update"]
    if rt.status_subresource:
        out.append({"name": f"{rt.plural}/status", "singularName": "", "namespaced": rt.namespaced,
                    "kind": rt.kind, "verbs": sub_verbs})
    if rt.scale is not None:
        out.append({"name": f"{rt.plural}/scale", "singularName": "", "namespaced": rt.namespaced,
                    "group": "autoscaling", "version": "v1", "kind": "Scale", "verbs": sub_verbs})
    return out


def resource_list(registry: Registry, group_name: str, ver: str) -> dict[str, Any] | None:
    types = registry.types_in(group_name, ver)
    if not types:
        return None
    resources: list[dict[str, Any]] = []
    for rt in sorted(types, key=lambda t: t.plural):
        resources.extend(_entries(rt))
    return {
        "kind": "APIResourceList", "apiVersion": "v1",
        "groupVersion": f"{group_name}/{ver}" if group_name else ver, "resources": resources,
    }
