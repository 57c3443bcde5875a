"""The types Kubernetes gives CRD values in CEL, and the values as CEL sees them.

kube-apiserver declares `self` with a type derived from the structural schema; here an object with
properties becomes a protobuf message (one field per property, its name escaped as Kubernetes escapes
it), so Google's CEL type-checks a rule exactly: an undefined or unescaped field does not compile.
Lists and maps keep their element types; nested collections inside messages, `int-or-string` and
untyped nodes are JSON values (`dyn`). `converter` gives, per schema, the function that turns a JSON
value into the one CEL evaluates (escaped keys, doubles for `number`), or None where they are the same.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cel_expr_python import cel  # type: ignore[import-untyped]
from google.protobuf import descriptor_pb2, descriptor_pool, struct_pb2

JSON = dict[str, Any]
_F = descriptor_pb2.FieldDescriptorProto
_T = cel.Type

# CEL's reserved words: Kubernetes exposes a property with one of these names as `__{name}__`.
RESERVED = frozenset({
    "true", "false", "null", "in", "as", "break", "const", "continue", "else", "for", "function", "if",
    "import", "let", "loop", "package", "namespace", "return", "var", "void", "while",
})
_ESCAPABLE = re.compile(r"^[a-zA-Z_.\-/][a-zA-Z0-9_.\-/]*$")
_ESCAPES = (("__", "__underscores__"), (".", "__dot__"), ("-", "__dash__"), ("/", "__slash__"))


def escape(name: str) -> str | None:
    """The name under which CEL sees property `name`, or None if CEL cannot see it at all."""
    if name in RESERVED:
        return f"__{name}__"
    if not _ESCAPABLE.match(name):
        return None
    out = name
    for raw, escaped in _ESCAPES:
        out = out.replace(raw, escaped)
    return out


@dataclass(frozen=True)
class Shape:
    """The CEL type of one schema node: scalar, message (object with properties), map, list or dyn."""

    kind: str  # "string" | "int" | "double" | "bool" | "message" | "map" | "list" | "dyn" | "struct"
    message: str = ""  # full name, for kind == "message"
    inner: Shape | None = None  # item (list) or value (map) shape

    def cel_type(self) -> Any:
        if self.kind == "message":
            return _T(self.message)
        if self.kind == "list":
            assert self.inner is not None
            return _T.List(self.inner.cel_type())
        if self.kind == "map":
            assert self.inner is not None
            return _T.Map(_T.STRING, self.inner.cel_type())
        if self.kind == "struct":
            return _T.Map(_T.STRING, _T.DYN)
        return {"string": _T.STRING, "int": _T.INT, "double": _T.DOUBLE, "bool": _T.BOOL}.get(self.kind, _T.DYN)


_PROTO_SCALARS = {"string": _F.TYPE_STRING, "int": _F.TYPE_INT64, "double": _F.TYPE_DOUBLE, "bool": _F.TYPE_BOOL}
_SCHEMA_SCALARS = {"string": "string", "integer": "int", "number": "double", "boolean": "bool"}


class Types:
    """Builds one protobuf file per schema: a message per object node that has properties."""

    _packages = itertools.count()

    def __init__(self) -> None:
        self.package = f"wasmfleet.crd{next(self._packages)}"
        self.file = descriptor_pb2.FileDescriptorProto(
            name=f"{self.package.replace('.', '/')}.proto", package=self.package, syntax="proto2",
            dependency=["google/protobuf/struct.proto"])
        self._count = itertools.count()

    def shape(self, schema: JSON, root: bool = False) -> Shape:
        if schema.get("x-kubernetes-int-or-string"):
            return Shape("dyn")
        type_ = schema.get("type")
        if type_ in _SCHEMA_SCALARS:
            return Shape(_SCHEMA_SCALARS[type_])
        if type_ == "array":
            items = schema.get("items")
            return Shape("list", inner=self.shape(items) if isinstance(items, dict) else Shape("dyn"))
        props = schema.get("properties")
        if isinstance(props, dict) and (props or root):
            return Shape("message", message=self._message(props, root))
        additional = schema.get("additionalProperties")
        if isinstance(additional, dict):
            return Shape("map", inner=self.shape(additional))
        if type_ == "object":
            return Shape("struct")
        return Shape("dyn")

    def _message(self, props: JSON, root: bool) -> str:
        msg = self.file.message_type.add(name=f"M{next(self._count)}")
        full = f"{self.package}.{msg.name}"
        number = itertools.count(1)
        for name, sub in props.items():
            cel_name = escape(name)
            if cel_name is None or not isinstance(sub, dict):
                continue
            if root and name == "metadata":
                shape = Shape("message", message=self._message(
                    {"name": {"type": "string"}, "generateName": {"type": "string"}}, False))
            else:
                shape = self.shape(sub)
            self._field(msg, cel_name, next(number), shape)
        return full

    def _field(self, msg: Any, name: str, number: int, shape: Shape) -> None:
        if shape.kind == "list":
            assert shape.inner is not None
            label, (type_, type_name) = _F.LABEL_REPEATED, _proto_type(shape.inner)
        elif shape.kind == "map" and _map_entry_name(name) in {t.name for t in msg.nested_type}:
            # protobuf names a map's entry type after the field; two fields may collide (`a_b`, `aB`):
            # the second is declared map(string, dyn).
            label, (type_, type_name) = _F.LABEL_OPTIONAL, _proto_type(Shape("struct"))
        elif shape.kind == "map":
            assert shape.inner is not None
            entry = msg.nested_type.add(name=_map_entry_name(name))
            entry.options.map_entry = True
            entry.field.add(name="key", number=1, type=_F.TYPE_STRING, label=_F.LABEL_OPTIONAL)
            v_type, v_name = _proto_type(shape.inner)
            value = entry.field.add(name="value", number=2, type=v_type, label=_F.LABEL_OPTIONAL)
            if v_name:
                value.type_name = v_name
            label, type_ = _F.LABEL_REPEATED, _F.TYPE_MESSAGE
            type_name = f".{self.package}.{msg.name}.{entry.name}"
        else:
            label, (type_, type_name) = _F.LABEL_OPTIONAL, _proto_type(shape)
        added = msg.field.add(name=name, number=number, type=type_, label=label, json_name=name)
        if type_name:
            added.type_name = type_name

    def pool(self) -> Any:
        pool = descriptor_pool.DescriptorPool()
        pool.AddSerializedFile(struct_pb2.DESCRIPTOR.serialized_pb)
        pool.Add(self.file)
        return pool


def _map_entry_name(field_name: str) -> str:
    """The nested entry message name protobuf insists on for a map field (CamelCase of it + "Entry")."""
    out, upper = [], True
    for ch in field_name:
        if ch == "_":
            upper = True
        elif upper:
            out.append(ch.upper())
            upper = False
        else:
            out.append(ch)
    return "".join(out) + "Entry"


def _proto_type(shape: Shape) -> tuple[int, str]:
    """A single (non-repeated) protobuf field type for `shape`; nested collections become JSON values."""
    if shape.kind in _PROTO_SCALARS:
        return _PROTO_SCALARS[shape.kind], ""
    if shape.kind == "message":
        return _F.TYPE_MESSAGE, f".{shape.message}"
    if shape.kind in ("map", "struct"):
        return _F.TYPE_MESSAGE, ".google.protobuf.Struct"
    return _F.TYPE_MESSAGE, ".google.protobuf.Value"


Convert = Callable[[Any], Any]


def converter(schema: JSON, root: bool = False) -> Convert | None:
    """A function giving the value as CEL sees it, or None where that is the JSON value itself."""
    if schema.get("x-kubernetes-int-or-string"):
        return None
    type_ = schema.get("type")
    if type_ == "number":
        return lambda v: float(v) if isinstance(v, int) and not isinstance(v, bool) else v
    if type_ == "array":
        items = schema.get("items")
        item = converter(items) if isinstance(items, dict) else None
        if item is None:
            return None
        return lambda v: [item(x) for x in v] if isinstance(v, list) else v
    additional = schema.get("additionalProperties")
    if isinstance(additional, dict) and not schema.get("properties"):
        value = converter(additional)
        if value is None:
            return None
        return lambda v: {k: value(x) for k, x in v.items()} if isinstance(v, dict) else v
    props = schema.get("properties")
    if not isinstance(props, dict):
        return None
    plan: dict[str, tuple[str | None, Convert | None]] = {}
    for name, sub in props.items():
        if root and name == "metadata":
            plan[name] = (name, _root_metadata)
            continue
        sub_conv = converter(sub) if isinstance(sub, dict) else None
        cel_name = escape(name)
        if cel_name != name or sub_conv is not None:
            plan[name] = (cel_name, sub_conv)
    if not plan:
        return None

    def convert(v: Any) -> Any:
        if not isinstance(v, dict):
            return v
        out = {}
        for key, val in v.items():
            step = plan.get(key)
            if step is None:
                out[key] = val
                continue
            cel_name, sub_conv = step
            if cel_name is not None:
                out[cel_name] = sub_conv(val) if sub_conv is not None and val is not None else val
        return out
    return convert


def _root_metadata(meta: Any) -> Any:
    if not isinstance(meta, dict):
        return meta
    return {k: meta[k] for k in ("name", "generateName") if k in meta}
