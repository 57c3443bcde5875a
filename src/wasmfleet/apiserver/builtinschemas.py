"""Structural schemas for the built-in kinds, so they are pruned and validated like real ones.

kube-apiserver decodes built-ins into Go structs: unknown fields vanish (or fail under
fieldValidation=Strict) and wrong types are rejected. These schemas give the same effect through the
CRD machinery. Parts whose full shape is not needed here keep unknown fields.
"""

from __future__ import annotations

from typing import Any

_STR: dict[str, Any] = {"type": "string"}
_INT: dict[str, Any] = {"type": "integer"}
_BOOL: dict[str, Any] = {"type": "boolean"}
_STR_MAP: dict[str, Any] = {"type": "object", "additionalProperties": _STR}
_OPEN: dict[str, Any] = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
_OPEN_LIST: dict[str, Any] = {"type": "array", "items": _OPEN}


def _root(**props: Any) -> dict[str, Any]:
    return {"type": "object", "properties": {"apiVersion": _STR, "kind": _STR, "metadata": {"type": "object"},
                                             **props}}


_OBJECT_REF = {"type": "object", "properties": {k: _STR for k in (
    "apiVersion", "kind", "name", "namespace", "uid", "resourceVersion", "fieldPath")}}

SCHEMAS: dict[tuple[str, str], dict[str, Any]] = {
    ("", "namespaces"): _root(
        spec={"type": "object", "properties": {"finalizers": {"type": "array", "items": _STR}}},
        status={"type": "object", "properties": {"phase": _STR, "conditions": _OPEN_LIST}},
    ),
    ("", "configmaps"): _root(data=_STR_MAP, binaryData=_STR_MAP, immutable=_BOOL),
    ("", "secrets"): _root(data=_STR_MAP, stringData=_STR_MAP, type=_STR, immutable=_BOOL),
    ("", "events"): _root(
        involvedObject=_OBJECT_REF, related=_OBJECT_REF, reason=_STR, message=_STR, type=_STR,
        source={"type": "object", "properties": {"component": _STR, "host": _STR}},
        firstTimestamp={"type": "string", "nullable": True}, lastTimestamp={"type": "string", "nullable": True},
        eventTime={"type": "string", "nullable": True}, count=_INT, action=_STR, reportingComponent=_STR,
        reportingInstance=_STR, series={"type": "object", "properties": {"count": _INT, "lastObservedTime": _STR}},
    ),
    ("coordination.k8s.io", "leases"): _root(spec={"type": "object", "properties": {
        "holderIdentity": {"type": "string", "nullable": True},
        "leaseDurationSeconds": {"type": "integer", "nullable": True},
        "acquireTime": {"type": "string", "nullable": True},
        "renewTime": {"type": "string", "nullable": True},
        "leaseTransitions": {"type": "integer", "nullable": True},
        "strategy": {"type": "string", "nullable": True},
        "preferredHolder": {"type": "string", "nullable": True},
    }}),
    ("discovery.k8s.io", "endpointslices"): {
        **_root(addressType={"type": "string", "enum": ["IPv4", "IPv6", "FQDN"]}, endpoints=_OPEN_LIST,
                ports={"type": "array", "items": {"type": "object", "properties": {
                    "name": {"type": "string", "nullable": True}, "protocol": {"type": "string", "nullable": True},
                    "port": {"type": "integer", "nullable": True},
                    "appProtocol": {"type": "string", "nullable": True}}}}),
        "required": ["addressType"],
    },
    ("", "services"): _root(spec=_OPEN, status=_OPEN),
}
