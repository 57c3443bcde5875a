"""What the server serves: one `ResourceType` per (group, version, plural), built-ins and CRD-derived.

Objects are stored once per (group, plural) under the storage version; every served version of a CRD
reads the same objects (conversion strategy None: only apiVersion changes), as kube-apiserver does.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from wasmfleet.apiserver import builtinschemas

CRD_GROUP = "apiextensions.k8s.io"


@dataclass(frozen=True)
class ScaleSpec:
    """The CRD's `subresources.scale` paths (JSON paths like `.spec.replicas`)."""

    spec_replicas_path: str
    status_replicas_path: str
    label_selector_path: str | None = None


@dataclass(frozen=True)
class PrinterColumn:
    name: str
    type: str
    json_path: str
    description: str = ""
    format: str = ""
    priority: int = 0


@dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    plural: str
    singular: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    status_subresource: bool = False
    scale: ScaleSpec | None = None
    schema: dict[str, Any] | None = None
    columns: tuple[PrinterColumn, ...] = ()
    builtin: bool = True
    storage_version: str = ""
    shared_storage: tuple[str, str] | None = None  # another resource's objects, seen in this shape
    verbs: tuple[str, ...] = (
        "create", "delete", "deletecollection", "get", "list", "patch", "update", "watch",
    )

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def store_key(self) -> tuple[str, str]:
        """Objects of every version of one resource share this storage key."""
        return self.shared_storage or (self.group, self.plural)

    @property
    def qualified(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural


def _col(name: str, type_: str, path: str, priority: int = 0, fmt: str = "") -> PrinterColumn:
    return PrinterColumn(name=name, type=type_, json_path=path, priority=priority, format=fmt)


AGE = _col("Age", "date", ".metadata.creationTimestamp")


def builtin_types() -> list[ResourceType]:
    """The non-CRD kinds wasmfleet and its clients use (everything else answers 404)."""
    return [
        dataclasses.replace(rt, schema=builtinschemas.SCHEMAS.get(rt.store_key)) for rt in _builtin_types()
    ]


def _builtin_types() -> list[ResourceType]:
    return [
        ResourceType(
            "", "v1", "namespaces", "namespace", "Namespace", False, ("ns",),
            status_subresource=True,
            columns=(_col("Status", "string", ".status.phase"), AGE),
        ),
        ResourceType(
            "", "v1", "configmaps", "configmap", "ConfigMap", True, ("cm",),
            columns=(_col("Data", "integer", ".data"), AGE),
        ),
        ResourceType(
            "", "v1", "secrets", "secret", "Secret", True,
            columns=(_col("Type", "string", ".type"), _col("Data", "integer", ".data"), AGE),
        ),
        ResourceType(
            "", "v1", "events", "event", "Event", True, ("ev",),
            columns=(
                _col("Last Seen", "date", "@event-last-seen"),
                _col("Type", "string", ".type"),
                _col("Reason", "string", ".reason"),
                _col("Object", "string", "@event-object"),
                _col("Message", "string", ".message"),
            ),
        ),
        ResourceType(
            "", "v1", "services", "service", "Service", True, ("svc",),
            categories=("all",),  # as in Kubernetes, so `kubectl get all` works
            status_subresource=True,
            columns=(_col("Type", "string", ".spec.type"), _col("Cluster-IP", "string", ".spec.clusterIP"), AGE),
        ),
        ResourceType(
            "events.k8s.io", "v1", "events", "event", "Event", True, ("ev",),
            shared_storage=("", "events"),
            columns=(
                _col("Type", "string", ".type"),
                _col("Reason", "string", ".reason"),
                _col("Note", "string", ".note"),
                AGE,
            ),
        ),
        ResourceType(
            "coordination.k8s.io", "v1", "leases", "lease", "Lease", True,
            columns=(_col("Holder", "string", ".spec.holderIdentity"), AGE),
        ),
        ResourceType(
            "discovery.k8s.io", "v1", "endpointslices", "endpointslice", "EndpointSlice", True,
            columns=(_col("AddressType", "string", ".addressType"), AGE),
        ),
        ResourceType(
            CRD_GROUP, "v1", "customresourcedefinitions", "customresourcedefinition",
            "CustomResourceDefinition", False, ("crd", "crds"),
            status_subresource=True,
            columns=(_col("Created At", "date", ".metadata.creationTimestamp"),),
        ),
    ]


def types_from_crd(crd: dict[str, Any]) -> list[ResourceType]:
    """Every served version of a CRD as a ResourceType (the caller has validated the CRD)."""
    spec = crd["spec"]
    names = spec["names"]
    versions = [v for v in spec.get("versions", []) if v.get("served", True)]
    storage = next((v["name"] for v in spec.get("versions", []) if v.get("storage")), versions[0]["name"])
    out: list[ResourceType] = []
    for ver in versions:
        subs = ver.get("subresources") or spec.get("subresources") or {}
        scale = subs.get("scale")
        columns = tuple(
            PrinterColumn(
                name=c["name"], type=c.get("type", "string"), json_path=c["jsonPath"],
                description=c.get("description", ""), format=c.get("format", ""),
                priority=int(c.get("priority", 0)),
            )
            for c in (ver.get("additionalPrinterColumns") or spec.get("additionalPrinterColumns") or [])
        )
        schema = (ver.get("schema") or spec.get("validation") or {}).get("openAPIV3Schema")
        out.append(
            ResourceType(
                group=spec["group"],
                version=ver["name"],
                plural=names["plural"],
                singular=names.get("singular") or names["kind"].lower(),
                kind=names["kind"],
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                short_names=tuple(names.get("shortNames") or ()),
                categories=tuple(names.get("categories") or ()),
                status_subresource="status" in subs,
                scale=ScaleSpec(
                    scale["specReplicasPath"], scale["statusReplicasPath"], scale.get("labelSelectorPath")
                ) if scale else None,
                schema=schema,
                columns=columns,
                builtin=False,
                storage_version=storage,
            )
        )
    return out
