"""URL paths to (resource type, namespace, name, subresource), following kube-apiserver's layout."""

from __future__ import annotations

from dataclasses import dataclass

from wasmfleet.apiserver import errors
from wasmfleet.apiserver.resource_types import ResourceType
from wasmfleet.apiserver.served_types import Registry


@dataclass(frozen=True)
class Target:
    rt: ResourceType
    namespace: str | None  # None: cluster-scoped, or every namespace (list/watch)
    name: str | None
    subresource: str


def _not_found() -> errors.ApiError:
    return errors.ApiError(404, "the server could not find the requested resource")


def resolve(registry: Registry, group: str, version: str, rest: list[str]) -> Target:
    if not rest:
        raise _not_found()
    ns: str | None = None
    if rest[0] == "namespaces" and len(rest) >= 3:
        candidate = registry.lookup(group, version, rest[2])
        if candidate is not None and candidate.namespaced:
            ns, rest = rest[1], rest[2:]
    rt = registry.lookup(group, version, rest[0])
    if rt is None or len(rest) > 3:
        raise _not_found()
    name = rest[1] if len(rest) > 1 else None
    sub = rest[2] if len(rest) > 2 else ""
    if ns is not None and not rt.namespaced:
        raise _not_found()
    if rt.namespaced and ns is None and name is not None:
        raise _not_found()
    if sub and not ((sub == "status" and rt.status_subresource) or (sub == "scale" and rt.scale is not None)):
        raise _not_found()
    if name == "":
        raise _not_found()
    return Target(rt, ns, name, sub)
