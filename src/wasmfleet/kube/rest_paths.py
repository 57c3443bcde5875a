"""Which REST paths the controllers talk to: one `Resource` per kind, no discovery round-trips.

Objects travel as plain dicts (the JSON the API server speaks); typed models live in wasmfleet.api
and are applied by the controllers, so this layer works for any kind, custom or built-in.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from wasmfleet.api import groups


@dataclass(frozen=True)
class Resource:
    group: str  # "" for the core group
    version: str
    plural: str
    kind: str
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str | None = None, name: str | None = None, subresource: str = "") -> str:
        """The collection path (name None) or an object path; namespace None means all namespaces."""
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace is not None:
            base += f"/namespaces/{quote(namespace, safe='')}"
        base += f"/{self.plural}"
        if name is not None:
            base += f"/{quote(name, safe='')}"
            if subresource:
                base += f"/{subresource}"
        return base


def _runtime(kind: str) -> Resource:
    info = groups.KINDS[kind]
    return Resource(groups.GROUP, groups.VERSION, info.plural, kind, info.namespaced)


ARTIFACTS = _runtime("Artifact")
HOSTS = _runtime("Host")
WORKLOADS = _runtime("Workload")
REPLICASETS = _runtime("WorkloadReplicaSet")
DEPLOYMENTS = _runtime("WorkloadDeployment")
CONFIGMAPS = Resource("", "v1", "configmaps", "ConfigMap")
SECRETS = Resource("", "v1", "secrets", "Secret")
EVENTS = Resource("", "v1", "events", "Event")
NAMESPACES = Resource("", "v1", "namespaces", "Namespace", namespaced=False)
LEASES = Resource("coordination.k8s.io", "v1", "leases", "Lease")


def key_of(obj: dict[str, object]) -> str:
    """The work-queue key of an object: "namespace/name" (or "name" for cluster-scoped ones)."""
    meta = obj.get("metadata")
    assert isinstance(meta, dict)
    ns = meta.get("namespace") or ""
    return f"{ns}/{meta['name']}" if ns else str(meta["name"])


def split_key(key: str) -> tuple[str | None, str]:
    ns, _, name = key.rpartition("/")
    return (ns or None), name
