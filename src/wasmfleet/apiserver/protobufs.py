"""Decoding the Kubernetes protobuf request bodies kubectl sends for a few built-in kinds.

kubectl's typed clients (`kubectl create namespace|configmap|secret|service ...`) send
`application/vnd.kubernetes.protobuf`: the magic "k8s\\0" and a runtime.Unknown {typeMeta, raw} whose raw
bytes are the object message. The server decodes those kinds into the JSON shape and always answers JSON
(kubectl accepts it). Field numbers follow k8s.io/api and apimachinery generated.proto; unknown fields
are skipped, so the decoding is exact for what is listed and silent about the rest.
"""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

from wasmfleet.apiserver import errors

MAGIC = b"k8s\x00"

# message -> {field number: (json name, type, label)}; type is a scalar kind or another message name;
# label: "" single, "rep" repeated, "map" map<string, value type>.
Schema = dict[str, dict[int, tuple[str, str, str]]]
SCHEMAS: Schema = {
    "Unknown": {1: ("typeMeta", "TypeMeta", ""), 2: ("raw", "bytes", ""), 3: ("contentEncoding", "string", ""),
                4: ("contentType", "string", "")},
    "TypeMeta": {1: ("apiVersion", "string", ""), 2: ("kind", "string", "")},
    "ObjectMeta": {
        1: ("name", "string", ""), 2: ("generateName", "string", ""), 3: ("namespace", "string", ""),
        5: ("uid", "string", ""), 6: ("resourceVersion", "string", ""), 7: ("generation", "int", ""),
        8: ("creationTimestamp", "Time", ""), 9: ("deletionTimestamp", "Time", ""),
        10: ("deletionGracePeriodSeconds", "int", ""), 11: ("labels", "string", "map"),
        12: ("annotations", "string", "map"), 13: ("ownerReferences", "OwnerReference", "rep"),
        14: ("finalizers", "string", "rep"),
    },
    "OwnerReference": {1: ("kind", "string", ""), 3: ("name", "string", ""), 4: ("uid", "string", ""),
                       5: ("apiVersion", "string", ""), 6: ("controller", "bool", ""),
                       7: ("blockOwnerDeletion", "bool", "")},
    "Time": {1: ("seconds", "int", ""), 2: ("nanos", "int", "")},
    "ConfigMap": {1: ("metadata", "ObjectMeta", ""), 2: ("data", "string", "map"),
                  3: ("binaryData", "bytes", "map"), 4: ("immutable", "bool", "")},
    "Secret": {1: ("metadata", "ObjectMeta", ""), 2: ("data", "bytes", "map"), 3: ("type", "string", ""),
               4: ("stringData", "string", "map"), 5: ("immutable", "bool", "")},
    "Namespace": {1: ("metadata", "ObjectMeta", ""), 2: ("spec", "NamespaceSpec", ""),
                  3: ("status", "NamespaceStatus", "")},
    "NamespaceSpec": {1: ("finalizers", "string", "rep")},
    "NamespaceStatus": {1: ("phase", "string", "")},
    "Service": {1: ("metadata", "ObjectMeta", ""), 2: ("spec", "ServiceSpec", "")},
    "ServiceSpec": {1: ("ports", "ServicePort", "rep"), 2: ("selector", "string", "map"),
                    3: ("clusterIP", "string", ""), 4: ("type", "string", ""),
                    5: ("externalIPs", "string", "rep"), 11: ("externalName", "string", ""),
                    18: ("clusterIPs", "string", "rep")},
    "ServicePort": {1: ("name", "string", ""), 2: ("protocol", "string", ""), 3: ("port", "int", ""),
                    4: ("targetPort", "IntOrString", ""), 5: ("nodePort", "int", ""),
                    6: ("appProtocol", "string", "")},
    "IntOrString": {1: ("type", "int", ""), 2: ("intVal", "int", ""), 3: ("strVal", "string", "")},
}
KINDS = {("v1", "ConfigMap"): "ConfigMap", ("v1", "Secret"): "Secret", ("v1", "Namespace"): "Namespace",
         ("v1", "Service"): "Service"}


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def varint(self) -> int:
        shift = result = 0
        while True:
            if self.pos >= len(self.data) or shift > 63:
                raise ValueError("truncated varint")
            byte = self.data[self.pos]
            self.pos += 1
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return result
            shift += 7

    def fields(self) -> list[tuple[int, int, Any]]:
        out: list[tuple[int, int, Any]] = []
        while self.pos < len(self.data):
            key = self.varint()
            number, wire = key >> 3, key & 7
            if wire == 0:
                out.append((number, wire, self.varint()))
            elif wire == 2:
                size = self.varint()
                if self.pos + size > len(self.data):
                    raise ValueError("truncated field")
                out.append((number, wire, self.data[self.pos:self.pos + size]))
                self.pos += size
            elif wire == 1:
                self.pos += 8
            elif wire == 5:
                self.pos += 4
            else:
                raise ValueError(f"unsupported wire type {wire}")
        return out


def _scalar(kind: str, wire: int, value: Any) -> Any:
    if kind == "string":
        return bytes(value).decode("utf-8")
    if kind == "bytes":
        return bytes(value)
    if kind == "bool":
        return bool(value)
    if kind == "int":
        return value - (1 << 64) if value >= 1 << 63 else value
    raise ValueError(kind)


def _message(name: str, data: bytes) -> dict[str, Any]:
    schema = SCHEMAS[name]
    out: dict[str, Any] = {}
    for number, wire, value in _Reader(data).fields():
        spec = schema.get(number)
        if spec is None:
            continue
        json_name, kind, label = spec
        if kind in SCHEMAS:
            decoded: Any = _convert(kind, _message(kind, value))
        elif label == "map":
            entry = {n: v for n, _, v in _Reader(value).fields()}
            key = _scalar("string", 2, entry.get(1, b""))
            out.setdefault(json_name, {})[key] = _json_value(kind, _scalar(kind, 2, entry.get(2, b"")))
            continue
        else:
            decoded = _json_value(kind, _scalar(kind, wire, value))
        if label == "rep":
            out.setdefault(json_name, []).append(decoded)
        else:
            out[json_name] = decoded
    # Go marshals every proto2 field, zero values included; JSON (omitempty) leaves them out.
    return {k: v for k, v in out.items() if k in _ALWAYS or not _is_zero(v)}


_ALWAYS = {"port"}


def _is_zero(value: Any) -> bool:
    return value in ("", 0, {}, []) and not (isinstance(value, bool) and value)


def _json_value(kind: str, value: Any) -> Any:
    return base64.b64encode(value).decode() if kind == "bytes" else value


def _convert(kind: str, msg: dict[str, Any]) -> Any:
    if kind == "Time":
        stamp = dt.datetime.fromtimestamp(msg.get("seconds", 0), dt.UTC)
        return stamp.strftime("%Y-%m-%dT%H:%M:%SZ")
    if kind == "IntOrString":
        return msg.get("strVal", "") if msg.get("type") == 1 else msg.get("intVal", 0)
    return msg


def decode(body: bytes) -> dict[str, Any]:
    """A protobuf request body as the JSON-shaped object; 415 for kinds this server cannot decode."""
    if not body.startswith(MAGIC):
        raise errors.bad_request("protobuf body without the k8s envelope")
    try:
        unknown = _message("Unknown", body[len(MAGIC):])
        type_meta = unknown.get("typeMeta") or {}
        ident = (type_meta.get("apiVersion", ""), type_meta.get("kind", ""))
        message = KINDS.get(ident)
        if message is None:
            raise errors.ApiError(415, f"protobuf bodies are not supported for {ident[1] or 'this kind'}; "
                                       "send application/json")
        raw = base64.b64decode(unknown.get("raw", ""))
        obj = _message(message, raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise errors.bad_request(f"the protobuf request body is malformed: {exc}") from exc
    return {"apiVersion": ident[0], "kind": ident[1], **obj}
