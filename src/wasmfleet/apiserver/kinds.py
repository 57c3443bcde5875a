"""Per-kind rules of the built-in kinds (what kube-apiserver's registry strategies do for them)."""

from __future__ import annotations

import base64
from typing import Any

from wasmfleet.apiserver import errors, schemas
from wasmfleet.apiserver.resource_types import CRD_GROUP, ResourceType, types_from_crd


def on_create(rt: ResourceType, obj: dict[str, Any]) -> None:
    if rt.group == "" and rt.plural == "namespaces":
        obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
        obj["status"] = {"phase": "Active"}
    on_write(rt, obj)


def on_write(rt: ResourceType, obj: dict[str, Any]) -> None:
    if rt.group == "" and rt.plural == "secrets":
        obj.setdefault("type", "Opaque")
        data = obj.get("data")
        for key, val in (data.items() if isinstance(data, dict) else ()):
            try:
                base64.b64decode(val, validate=True) if isinstance(val, str) else None
            except ValueError as exc:  # binascii.Error: the JSON decoding kube-apiserver does fails the same way
                raise errors.bad_request(f"Secret data {key!r}: illegal base64 data") from exc
        string_data = obj.pop("stringData", None)
        if isinstance(string_data, dict):
            data = obj.setdefault("data", {})
            for key, val in string_data.items():
                data[key] = base64.b64encode(str(val).encode()).decode()
    if rt.group == "" and rt.plural == "services":
        obj.setdefault("spec", {}).setdefault("type", "ClusterIP")


def check_crd(obj: dict[str, Any]) -> list[dict[str, str]]:
    """The CRD rules that matter for serving it: names, group, versions, schema compiles."""
    causes: list[dict[str, str]] = []

    def req(field: str) -> None:
        causes.append({"reason": "FieldValueRequired", "message": "Required value", "field": field})

    spec = obj.get("spec")
    if not isinstance(spec, dict):
        req("spec")
        return causes
    names: dict[str, Any] = spec["names"] if isinstance(spec.get("names"), dict) else {}
    for key in ("plural", "kind"):
        if not names.get(key):
            req(f"spec.names.{key}")
    if not spec.get("group"):
        req("spec.group")
    if spec.get("scope") not in ("Namespaced", "Cluster"):
        causes.append({"reason": "FieldValueNotSupported", "field": "spec.scope",
                       "message": f'Unsupported value: "{spec.get("scope")}": supported values: '
                                  '"Cluster", "Namespaced"'})
    versions = spec.get("versions")
    if not isinstance(versions, list) or not versions:
        req("spec.versions")
    else:
        if sum(1 for v in versions if isinstance(v, dict) and v.get("storage")) != 1:
            causes.append({"reason": "FieldValueInvalid", "field": "spec.versions",
                           "message": "Invalid value: must have exactly one version marked as storage version"})
        for i, ver in enumerate(versions):
            if not isinstance(ver, dict) or not ver.get("name"):
                req(f"spec.versions[{i}].name")
                continue
            schema = (ver.get("schema") or {}).get("openAPIV3Schema")
            if schema is not None:
                try:
                    checker = schemas.SchemaChecker(schema)
                except Exception as exc:  # jsonschema SchemaError and friends: the CRD is at fault
                    causes.append({"reason": "FieldValueInvalid", "field": f"spec.versions[{i}].schema",
                                   "message": f"Invalid value: {exc}".splitlines()[0]})
                    continue
                # As kube-apiserver: a rule that does not compile (or type-check) refuses the CRD.
                causes.extend({"reason": "FieldValueInvalid", "field": f"spec.versions[{i}].schema.{p.field}",
                               "message": p.message} for p in checker.rules.problems)
    name = obj.get("metadata", {}).get("name")
    if not causes and name != f"{names['plural']}.{spec['group']}":
        causes.append({"reason": "FieldValueInvalid", "field": "metadata.name",
                       "message": f'Invalid value: "{name}": must be spec.names.plural+"."+spec.group'})
    return causes


def crd_status(obj: dict[str, Any], when: str) -> dict[str, Any]:
    names = dict(obj["spec"]["names"])
    names.setdefault("singular", names["kind"].lower())
    names.setdefault("listKind", names["kind"] + "List")
    conds = [
        {"type": t, "status": "True", "lastTransitionTime": when, "reason": r, "message": m}
        for t, r, m in (
            ("NamesAccepted", "NoConflicts", "no conflicts found"),
            ("Established", "InitialNamesAccepted", "the initial names have been accepted"),
        )
    ]
    return {"conditions": conds, "acceptedNames": names,
            "storedVersions": [v["name"] for v in obj["spec"]["versions"] if v.get("storage")]}


def crd_types(obj: dict[str, Any]) -> list[ResourceType]:
    try:
        return types_from_crd(obj)
    except (KeyError, IndexError, TypeError) as exc:
        raise errors.bad_request(f"customresourcedefinition {obj.get('metadata', {}).get('name')!r}: {exc}") from exc


def is_crd(rt: ResourceType) -> bool:
    return rt.group == CRD_GROUP and rt.plural == "customresourcedefinitions"


def is_namespace(rt: ResourceType) -> bool:
    return rt.group == "" and rt.plural == "namespaces"
