"""OpenAPI v3 documents, enough for `kubectl explain` and for kubectl to see server-side field validation.

kubectl decides whether the server validates fields (it then sends fieldValidation=Strict instead of
validating on the client) by finding the `fieldValidation` parameter on the PATCH operation tagged with
the kind's x-kubernetes-group-version-kind; explain reads the schemas under components.
"""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

from wasmfleet.apiserver.resource_types import ResourceType
from wasmfleet.apiserver.served_types import Registry

OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"

_OBJECT_META_SCHEMA: dict[str, Any] = {
    "description": "ObjectMeta is metadata that all persisted resources must have.",
    "type": "object",
    "properties": {
        "name": {"type": "string", "description": "Name must be unique within a namespace."},
        "generateName": {"type": "string", "description": "Prefix the server uses to generate a unique name."},
        "namespace": {"type": "string", "description": "Namespace defines the space within which each name must "
                      "be unique."},
        "labels": {"type": "object", "additionalProperties": {"type": "string"},
                   "description": "Map of string keys and values used to organize and select objects."},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"},
                        "description": "Unstructured key value map stored with a resource."},
        "uid": {"type": "string", "description": "Unique in time and space value for this object."},
        "resourceVersion": {"type": "string", "description": "Opaque version of this object, for optimistic "
                            "concurrency and watches."},
        "generation": {"type": "integer", "format": "int64", "description": "Sequence number of the desired "
                       "state (spec) changes."},
        "creationTimestamp": {"type": "string", "format": "date-time", "description": "When the object was "
                              "created."},
        "deletionTimestamp": {"type": "string", "format": "date-time", "description": "When the object was "
                              "asked to be deleted."},
        "finalizers": {"type": "array", "items": {"type": "string"}, "description": "Must be empty before the "
                       "object is deleted from the registry."},
        "ownerReferences": {"type": "array", "items": {"type": "object", "x-kubernetes-preserve-unknown-fields":
                            True}, "description": "Objects this object depends on (garbage collection)."},
        "managedFields": {"type": "array", "items": {"type": "object", "x-kubernetes-preserve-unknown-fields":
                          True}, "description": "Field ownership of server-side apply."},
    },
}


def schema_name(rt: ResourceType) -> str:
    if rt.builtin:
        short = rt.group.split(".")[0] if rt.group else "core"
        return f"io.k8s.api.{short}.{rt.version}.{rt.kind}"
    return ".".join(reversed(rt.group.split("."))) + f".{rt.version}.{rt.kind}"


def _kind_schema(rt: ResourceType) -> dict[str, Any]:
    schema: dict[str, Any] = copy.deepcopy(rt.schema) if rt.schema else {
        "type": "object", "x-kubernetes-preserve-unknown-fields": True,
        "description": f"{rt.kind} ({rt.api_version}), served by wasmfleet without a published schema.",
    }
    props: dict[str, Any] = schema.setdefault("properties", {})
    props["apiVersion"] = {"type": "string", "description": "APIVersion defines the versioned schema of this "
                           "representation of an object."}
    props["kind"] = {"type": "string", "description": "Kind is a string value representing the REST resource "
                     "this object represents."}
    props["metadata"] = {"allOf": [{"$ref": f"#/components/schemas/{OBJECT_META}"}], "default": {},
                         "description": "Standard object's metadata."}
    schema["x-kubernetes-group-version-kind"] = [{"group": rt.group, "version": rt.version, "kind": rt.kind}]
    return schema


def _params(*names: str) -> list[dict[str, Any]]:
    return [{"name": n, "in": "query", "schema": {"type": "string", "uniqueItems": True}} for n in names]


def _op(rt: ResourceType, action: str, ref: str, body_types: tuple[str, ...] = (), params: tuple[str, ...] = ()
        ) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": f"{action}{rt.kind}",
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {"group": rt.group, "version": rt.version, "kind": rt.kind},
        "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": {"$ref": ref}}}}},
        "parameters": _params(*params),
    }
    if body_types:
        op["requestBody"] = {"content": {t: {"schema": {"$ref": ref}} for t in body_types}, "required": True}
    return op


def group_version_doc(registry: Registry, group: str, version: str) -> dict[str, Any] | None:
    types = registry.types_in(group, version)
    if not types:
        return None
    schemas: dict[str, Any] = {OBJECT_META: _OBJECT_META_SCHEMA}
    paths: dict[str, Any] = {}
    prefix = f"/apis/{group}/{version}" if group else f"/api/{version}"
    write_params = ("dryRun", "fieldManager", "fieldValidation")
    for rt in types:
        name = schema_name(rt)
        schemas[name] = _kind_schema(rt)
        ref = f"#/components/schemas/{name}"
        base = f"{prefix}/namespaces/{{namespace}}/{rt.plural}" if rt.namespaced else f"{prefix}/{rt.plural}"
        paths[base] = {
            "get": _op(rt, "list", ref, params=("labelSelector", "fieldSelector", "limit", "continue", "watch")),
            "post": _op(rt, "post", ref, ("application/json", "application/yaml"), write_params),
        }
        patch_types = ("application/json-patch+json", "application/merge-patch+json", "application/apply-patch+yaml")
        paths[f"{base}/{{name}}"] = {
            "get": _op(rt, "get", ref),
            "put": _op(rt, "put", ref, ("application/json", "application/yaml"), write_params),
            "patch": _op(rt, "patch", ref, patch_types, (*write_params, "force")),
            "delete": _op(rt, "delete", ref, params=("dryRun", "propagationPolicy")),
        }
        if rt.status_subresource:
            paths[f"{base}/{{name}}/status"] = {
                "get": _op(rt, "get", ref), "put": _op(rt, "put", ref, ("application/json",), write_params),
                "patch": _op(rt, "patch", ref, patch_types, (*write_params, "force")),
            }
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.37.0"},
        "paths": paths,
        "components": {"schemas": schemas},
    }


def root_doc(registry: Registry) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for group, version in registry.group_versions():
        key = f"apis/{group}/{version}" if group else f"api/{version}"
        doc = group_version_doc(registry, group, version)
        digest = hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:32].upper()
        paths[key] = {"serverRelativeURL": f"/openapi/v3/{key}?hash={digest}"}
    return {"paths": paths}
