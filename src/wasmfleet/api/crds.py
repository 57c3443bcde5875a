"""CustomResourceDefinitions generated from the resource models.

The models are the single source of truth: this module turns their JSON schema into structural
openAPIV3Schema (every $ref inlined, nullable unions collapsed, titles dropped, each field's docstring as
its `description` for `kubectl explain`) and adds what only a CRD carries: subresources, printer columns,
short names, CEL rules. deploy/crds/*.yaml is this output committed; a test fails when the two drift apart.
"""

from __future__ import annotations

import copy
from typing import Any

import yaml

from wasmfleet.api import models
from wasmfleet.api.groups import GROUP, KINDS, VERSION

JSON = dict[str, Any]

READY_COLUMN = {
    "name": "READY",
    "type": "string",
    "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
}
AGE_COLUMN = {"name": "AGE", "type": "date", "jsonPath": ".metadata.creationTimestamp"}

PRINTER_COLUMNS: dict[str, list[JSON]] = {
    "Artifact": [
        {"name": "IMAGE", "type": "string", "jsonPath": ".spec.image"},
        READY_COLUMN,
        AGE_COLUMN,
    ],
    "Host": [
        {"name": "HOSTID", "type": "string", "jsonPath": ".hostId"},
        {"name": "HOSTGROUP", "type": "string", "jsonPath": ".metadata.labels.hostgroup"},
        {"name": "ENVIRONMENT", "type": "string", "jsonPath": ".environment"},
        READY_COLUMN,
        AGE_COLUMN,
    ],
    "Workload": [
        {"name": "HOSTID", "type": "string", "jsonPath": ".status.hostId"},
        {"name": "ENVIRONMENT", "type": "string", "jsonPath": ".status.environment"},
        READY_COLUMN,
        AGE_COLUMN,
    ],
    "WorkloadReplicaSet": [
        {"name": "REPLICAS", "type": "integer", "jsonPath": ".spec.replicas"},
        {"name": "READY", "type": "integer", "jsonPath": ".status.replicas.ready"},
        AGE_COLUMN,
    ],
    "WorkloadDeployment": [
        {"name": "REPLICAS", "type": "integer", "jsonPath": ".spec.replicas"},
        {"name": "READY", "type": "integer", "jsonPath": ".status.replicas.ready"},
        {"name": "POLICY", "type": "string", "jsonPath": ".spec.deployPolicy"},
        AGE_COLUMN,
    ],
}

SCALE: dict[str, JSON] = {
    "WorkloadReplicaSet": {
        "specReplicasPath": ".spec.replicas",
        "statusReplicasPath": ".status.replicas.current",
    },
    "WorkloadDeployment": {
        "specReplicasPath": ".spec.replicas",
        "statusReplicasPath": ".status.currentReplicas",
        "labelSelectorPath": ".status.selector",
    },
}

_DROP = {"title"}

API_VERSION_DESCRIPTION = (
    "APIVersion defines the versioned schema of this representation of an object. Servers should convert "
    "recognized schemas to the latest internal value, and may reject unrecognized values. More info: "
    "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources"
)
KIND_DESCRIPTION = (
    "Kind is a string value representing the REST resource this object represents. Servers may infer this "
    "from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: "
    "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds"
)
METADATA_DESCRIPTION = (
    "Standard object's metadata. More info: "
    "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"
)


def _structural(node: Any, defs: JSON) -> Any:
    """Inline refs and rewrite pydantic's JSON schema into a Kubernetes structural schema."""
    if isinstance(node, list):
        return [_structural(n, defs) for n in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = copy.deepcopy(defs[node["$ref"].rsplit("/", 1)[-1]])
        extra = {k: v for k, v in node.items() if k != "$ref"}
        return _structural({**target, **extra}, defs)
    if "anyOf" in node:
        # `X | None` is "may be absent" in Kubernetes terms: keep X, drop the null branch.
        branches = [b for b in node["anyOf"] if b.get("type") != "null"]
        if len(branches) == 1:
            merged = {**{k: v for k, v in node.items() if k not in ("anyOf", "default")}, **branches[0]}
            if node.get("default") is not None:
                merged["default"] = node["default"]
            return _structural(merged, defs)
    out: JSON = {}
    for key, value in node.items():
        if key in _DROP or key == "$defs":
            continue
        if key == "properties":
            out[key] = {name: _structural(sub, defs) for name, sub in value.items()}
        elif key == "additionalProperties" and value is True:
            out["x-kubernetes-preserve-unknown-fields"] = True
        elif key == "additionalProperties" and value is False:
            continue  # structural schemas forbid it; the API server prunes unknown fields instead
        elif key == "const":
            out["enum"] = [value]
        elif key == "description":
            out[key] = " ".join(value.split())  # docstrings wrap lines; kubectl explain re-wraps the text
        else:
            out[key] = _structural(value, defs)
    if out.get("type") == "object" and "properties" not in out and "additionalProperties" not in out:
        out["x-kubernetes-preserve-unknown-fields"] = True
    return out


def openapi_schema(kind: str) -> JSON:
    model = models.MODELS[kind]
    raw = model.model_json_schema(by_alias=True, mode="validation")
    schema: JSON = _structural(raw, raw.get("$defs", {}))
    props = schema["properties"]
    # apiVersion/kind/metadata belong to the API machinery, not to the CRD author.
    # Their descriptions are the ones every Kubernetes kind carries.
    props["apiVersion"] = {"type": "string", "description": API_VERSION_DESCRIPTION}
    props["kind"] = {"type": "string", "description": KIND_DESCRIPTION}
    props["metadata"] = {"type": "object", "description": METADATA_DESCRIPTION}
    machinery = ("apiVersion", "kind", "metadata")
    schema["required"] = [r for r in schema.get("required", []) if r not in machinery]
    if not schema["required"]:
        del schema["required"]
    return schema


def crd(kind: str) -> JSON:
    info = KINDS[kind]
    subresources: JSON = {"status": {}}
    if kind in SCALE:
        subresources["scale"] = SCALE[kind]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{info.plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": info.plural,
                "singular": info.singular,
                "shortNames": list(info.short_names),
                "categories": ["wasmcloud"],
            },
            "scope": "Namespaced" if info.namespaced else "Cluster",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": openapi_schema(kind)},
                    "subresources": subresources,
                    "additionalPrinterColumns": PRINTER_COLUMNS[kind],
                }
            ],
        },
    }


def all_crds() -> list[JSON]:
    return [crd(kind) for kind in KINDS]


def file_name(definition: JSON) -> str:
    return f"{definition['metadata']['name']}.yaml"


def to_yaml(definition: JSON) -> str:
    header = "# Generated from src/wasmfleet/api/models.py by `wasmfleet crds --write deploy/crds`.\n"
    return header + yaml.safe_dump(definition, sort_keys=False, width=120)
