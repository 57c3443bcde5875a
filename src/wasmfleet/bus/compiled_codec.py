"""The bus messages' protobuf-JSON scalar forms, and decoders compiled once per message.

Encoding is pydantic-core's JSON writer on the models: their aliases are the protobuf JSON names
(checked here at import) and their serializers are `timestamp_to_json`, `uint64_to_json` and
`shortest_float32` below, json_format's forms of those scalars.

Decoding through json_format walks descriptors and reflection for every message, then the model
is validated from a dict on top: 10-20x slower than the hand-written codec the schema replaced. So
each generated message's descriptor is read once (at import) into a straight-line Python function
`dec_<Model>(obj) -> model` that takes each field under its JSON or proto name, checks and converts
its value (int64 from strings, enums from names or numbers, Timestamps from RFC 3339, float32 to
its shortest form) and constructs the model directly, as pydantic's model_construct does: every
value is already what validation would produce.

The decoders are a fast path for the canonical inputs seen in practice, not a second
implementation of every rule: for anything else (a number written as a float, an enum name this
schema lacks, a field under both of its names, a wrong type...) they raise `Unsupported`, and
`wasmfleet.bus.messages` hands the message to json_format, which decides (and words any error)
exactly as before. The .proto files stay the one source of names, numbers and types;
tests/unit/test_bus_compiled_codec.py checks both paths agree.
"""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from pydantic import BaseModel

EXTENSION_FIELDS_FROM = 100
"""wasmfleet's fields in upstream's messages are numbered from here (docs/protocol.md)."""


class Unsupported(Exception):
    """The fast path declines this value; the json_format reference path decides."""


Decoder = Callable[[dict[str, Any]], Any]
"""A JSON object (as orjson parsed it) -> the model; raises Unsupported."""


# ---------------------------------------------------------------------------------------------------
# Value helpers the generated code calls (each raises Unsupported for anything not canonical)

_INT_RANGES = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}
_FLOAT32_MAX = 3.4028234663852886e38
_f32 = struct.Struct("<f")


def _str_list(value: Any) -> list[str]:
    if value.__class__ is not list:
        raise Unsupported
    for item in value:
        if item.__class__ is not str:
            raise Unsupported
    return list(value)


def _str_map(value: Any) -> dict[str, str]:
    if value.__class__ is not dict:
        raise Unsupported
    for key, item in value.items():
        if key.__class__ is not str or item.__class__ is not str:
            raise Unsupported
    return dict(value)


def _int_from_json(value: Any, low: int, high: int) -> int:
    # json_format takes integers as numbers or decimal strings; floats, signs and spaces are left
    # to it (it has its own rules for those).
    if value.__class__ is int:
        number = value
    elif value.__class__ is str and value.isascii() and (value.isdigit() or (value[:1] == "-" and value[1:].isdigit())):
        number = int(value)
    else:
        raise Unsupported
    if not low <= number <= high:
        raise Unsupported
    return number


def shortest_float32(value: Any) -> float:
    """The float json_format writes for a float32 field holding `value`: the value rounded to 32
    bits, printed with the fewest digits that round-trip (as protobuf's ToShortestFloat)."""
    if value.__class__ is not float and value.__class__ is not int:
        raise Unsupported
    cached = _FLOAT32_SEEN.get(value)
    if cached is not None:  # a host's CPU figure repeats: its heartbeats need not redo this
        return cached
    if not math.isfinite(value) or abs(value) > _FLOAT32_MAX:
        raise Unsupported  # NaN/Infinity are strings in protobuf-JSON; out of range is json_format's to judge
    stored = _f32.unpack(_f32.pack(value))[0]
    precision = 6
    rounded = float(f"{stored:.{precision}g}")
    while _f32.unpack(_f32.pack(rounded))[0] != stored:
        precision += 1
        rounded = float(f"{stored:.{precision}g}")
    if len(_FLOAT32_SEEN) >= 4096:
        _FLOAT32_SEEN.clear()
    _FLOAT32_SEEN[value] = rounded
    return rounded


_FLOAT32_SEEN: dict[float, float] = {}


def uint64_to_json(value: Any) -> str:
    """A uint64 as json_format writes it: a decimal string."""
    if value.__class__ is not int or not 0 <= value < 2**64:
        raise Unsupported
    return str(value)


def _double(value: Any) -> float:
    if (value.__class__ is not float and value.__class__ is not int) or not math.isfinite(value):
        raise Unsupported
    return float(value)


def timestamp_to_json(value: Any) -> str:
    """A Timestamp as json_format writes it (RFC 3339 in UTC; 0, 3 or 6 fractional digits)."""
    if value.__class__ is not datetime:
        raise Unsupported
    if value.tzinfo is not None:
        if value.utcoffset():
            value = value.astimezone(UTC)
        value = value.replace(tzinfo=None)
    text: str = value.isoformat()  # YYYY-MM-DDTHH:MM:SS[.ffffff]: json_format's digits, but for whole ms
    micros = value.microsecond
    if micros and micros % 1000 == 0:
        text = text[:-3]  # json_format writes 0, 3, 6 or 9 fractional digits: the fewest exact
    return text + "Z"


_RFC3339 = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)\Z")


def _timestamp_from_json(value: Any) -> datetime:
    match = _RFC3339.match(value) if value.__class__ is str else None
    if match is None:
        raise Unsupported
    base, fraction, zone = match.groups()
    try:
        parsed = datetime.fromisoformat(base + ("+00:00" if zone == "Z" else zone))
        if fraction:  # nanoseconds are cut to the microseconds a datetime holds, as before
            parsed = parsed.replace(microsecond=int(fraction[:6].ljust(6, "0")))
        return parsed if zone == "Z" else parsed.astimezone(UTC)
    except (ValueError, OverflowError):  # out of range: json_format words the error
        raise Unsupported from None


_HELPERS: dict[str, Any] = {
    "Unsupported": Unsupported,
    "_str_list": _str_list,
    "_str_map": _str_map,
    "_int_from_json": _int_from_json,
    "_shortest_float32": shortest_float32,
    "_double": _double,
    "_timestamp_from_json": _timestamp_from_json,
    "_new": object.__new__,
    "_set": object.__setattr__,
    "_ABSENT": object(),
}


# ---------------------------------------------------------------------------------------------------
# The compiler


def _is_map(field: FieldDescriptor) -> bool:
    return field.message_type is not None and field.message_type.GetOptions().map_entry


def _is_timestamp(field: FieldDescriptor) -> bool:
    return field.message_type is not None and field.message_type.full_name == "google.protobuf.Timestamp"


class _Compiler:
    def __init__(self, models: Iterable[type[BaseModel]]) -> None:
        self.models = list(models)
        self.by_proto: dict[str, type[BaseModel]] = {
            self.descriptor(m).full_name: m for m in self.models
        }
        self.namespace: dict[str, Any] = dict(_HELPERS)
        self.source: list[str] = []

    @staticmethod
    def descriptor(model: type[BaseModel]) -> Descriptor:
        return model.proto_type.DESCRIPTOR  # type: ignore[attr-defined,no-any-return]

    def const(self, value: Any) -> str:
        name = f"_c{len(self.namespace)}"
        self.namespace[name] = value
        return name

    def model_name(self, full_name: str) -> str:
        model = self.by_proto.get(full_name)
        if model is None:
            raise TypeError(f"no bus model for protobuf message {full_name}")
        return model.__name__

    def compile(self) -> dict[type[BaseModel], Decoder]:
        for model in self.models:
            self._check(model)
            self.namespace[f"M_{model.__name__}"] = model
            self._decoder(model)
        exec(compile("\n".join(self.source), "<wasmfleet.bus.compiled_codec>", "exec"), self.namespace)
        return {m: self.namespace[f"dec_{m.__name__}"] for m in self.models}

    def _check(self, model: type[BaseModel]) -> None:
        # Direct construction is only what pydantic's model_construct does when the model has no
        # private attributes, post-init hook or extra fields; say so at import if that changes.
        if model.__pydantic_post_init__ or model.__private_attributes__ or model.__pydantic_root_model__:
            raise TypeError(f"{model.__name__}: the compiled codec cannot construct it directly")
        fields = self.descriptor(model).fields
        names = {f.name for f in fields}
        if names != set(model.model_fields):
            drift = sorted(set(model.model_fields) ^ names)
            raise TypeError(f"{model.__name__}: fields {drift} differ from the .proto")
        for field in fields:  # the encoder writes the models' aliases: they must be the JSON names
            alias = model.model_fields[field.name].alias
            if alias != field.json_name:
                raise TypeError(
                    f"{model.__name__}.{field.name}: alias {alias!r}, protobuf JSON name {field.json_name!r}")

    # ---- decode

    def _decoder(self, model: type[BaseModel]) -> None:
        desc = self.descriptor(model)
        lines = [f"def dec_{model.__name__}(d):", "    fs = set()"]
        values: list[str] = []
        for i, field in enumerate(desc.fields):
            target = f"f{i}"
            values.append(f"{field.name!r}: {target}")
            json_name, name = repr(field.json_name), repr(field.name)
            if field.json_name == field.name:
                lines.append(f"    v = d.get({json_name})")
            else:
                lines += [f"    v = d.get({json_name}, _ABSENT)", "    if v is _ABSENT:", f"        v = d.get({name})",
                          f"    elif {name} in d:", "        raise Unsupported  # both names: json_format refuses it"]
            lines += ["    if v is None:", f"        {target} = {self._default(model, field.name)}", "    else:",
                      f"        {target} = {self._dec_value(field, 'v')}", f"        fs.add({name})"]
        for oneof in desc.oneofs:
            if len(oneof.fields) > 1:  # two members given: json_format refuses it
                present = " + ".join(f"(d.get({f.json_name!r}) is not None or d.get({f.name!r}) is not None)"
                                     for f in oneof.fields)
                lines += [f"    if {present} > 1:", "        raise Unsupported"]
        lines += [f"    m = _new(M_{model.__name__})", f"    _set(m, '__dict__', {{{', '.join(values)}}})",
                  "    _set(m, '__pydantic_fields_set__', fs)", "    _set(m, '__pydantic_extra__', None)",
                  "    _set(m, '__pydantic_private__', None)", "    return m"]
        self.source.append("\n".join(lines))

    def _default(self, model: type[BaseModel], name: str) -> str:
        info = model.model_fields[name]
        if info.default_factory is list:
            return "[]"
        if info.default_factory is dict:
            return "{}"
        if info.default_factory is not None:
            return f"{self.const(info.default_factory)}()"
        return self.const(info.default)

    def _message_of(self, field: FieldDescriptor) -> str:
        message_type = field.message_type
        assert message_type is not None  # only called for message fields
        return self.model_name(message_type.full_name)

    def _dec_value(self, field: FieldDescriptor, v: str) -> str:
        if _is_map(field):
            return f"_str_map({v})"
        if field.is_repeated:
            if field.type == FieldDescriptor.TYPE_MESSAGE:
                sub = self._message_of(field)
                items = f"({v} if {v}.__class__ is list else _no())"
                return f"[dec_{sub}(x if x.__class__ is dict else _no()) for x in {items}]"
            return f"_str_list({v})"
        t = field.type
        if _is_timestamp(field):
            return f"_timestamp_from_json({v})"
        if t == FieldDescriptor.TYPE_MESSAGE:
            return f"dec_{self._message_of(field)}({v} if {v}.__class__ is dict else _no())"
        if t == FieldDescriptor.TYPE_STRING:
            return f"({v} if {v}.__class__ is str else _no())"
        if t == FieldDescriptor.TYPE_BOOL:
            return f"({v} if {v}.__class__ is bool else _no())"
        if t in _INT_RANGES:
            low, high = _INT_RANGES[t]
            return f"_int_from_json({v}, {low}, {high})"
        if t == FieldDescriptor.TYPE_FLOAT:
            return f"_shortest_float32({v})"
        if t == FieldDescriptor.TYPE_DOUBLE:
            return f"_double({v})"
        if t == FieldDescriptor.TYPE_ENUM:
            enum_cls = self._enum_class(field)
            # By name or number; a name or number this schema lacks is json_format's to handle.
            enum_type = field.enum_type
            assert enum_type is not None
            members: dict[str | int, Any] = {value.name: enum_cls(value.name) for value in enum_type.values}
            members.update({value.number: enum_cls(value.name) for value in enum_type.values})
            known = f"{v}.__class__ is str or {v}.__class__ is int"
            return f"({self.const(members)}.get({v}) if {known} else None) or _no()"
        raise TypeError(f"{field.full_name}: type {t} is not compiled")

    def _enum_class(self, field: FieldDescriptor) -> Any:
        model = self.by_proto[field.containing_type.full_name]  # type: ignore[union-attr]
        annotation = model.model_fields[field.name].annotation
        if not isinstance(annotation, type):
            raise TypeError(f"{field.full_name}: the model's annotation is not an enum class")
        return annotation


def _no() -> Any:
    raise Unsupported


_HELPERS["_no"] = _no


def compile_decoders(models: Iterable[type[BaseModel]]) -> dict[type[BaseModel], Decoder]:
    """A decoder for each model (each names its generated message in `proto_type`; every message
    a model's fields refer to must be among `models`)."""
    return _Compiler(models).compile()
