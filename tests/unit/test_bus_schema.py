"""The in-process models of wasmfleet.bus.messages agree with the .proto schema under proto/.

Checks: every protocol model names a generated message and has exactly its fields; each field's
kind matches (string/int/bool/float scalars, lists for repeated, dicts for maps, the model of the
sub-message, datetime for Timestamp, an enum whose values are the protobuf names in number order);
every message of the two proto packages has a model (but upstream's gRPC-only wrapper); upstream's
messages number their fields 1..n and wasmfleet's additions to them are numbered from 100 with
presence (or repeated), and a default model leaves them off the wire for upstream peers.
"""

from __future__ import annotations

import enum
import importlib
import pkgutil
import types
import typing
from datetime import datetime

import pytest
from google.protobuf.descriptor import Descriptor, FieldDescriptor

from wasmfleet.bus import messages, pb

MODELS = sorted(
    (obj for obj in vars(messages).values()
     if isinstance(obj, type) and issubclass(obj, messages.Message) and obj is not messages.Message),
    key=lambda cls: cls.__name__,
)

_SCALARS: dict[int, type] = {
    FieldDescriptor.TYPE_STRING: str,
    FieldDescriptor.TYPE_BOOL: bool,
    FieldDescriptor.TYPE_FLOAT: float,
    FieldDescriptor.TYPE_DOUBLE: float,
    **dict.fromkeys(
        (FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_SINT32, FieldDescriptor.TYPE_UINT32,
         FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_SINT64, FieldDescriptor.TYPE_UINT64),
        int,
    ),
}


def _strip_optional(annotation: object) -> object:
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and type(None) in args:
        (annotation,) = [a for a in args if a is not type(None)]
    if typing.get_origin(annotation) is typing.Annotated:
        return typing.get_args(annotation)[0]
    return annotation


def _is_map(field: FieldDescriptor) -> bool:
    return field.message_type is not None and field.message_type.GetOptions().map_entry


def _expected_element(field: FieldDescriptor) -> object:
    """The Python type a model should hold for one value of `field`."""
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        if field.message_type.full_name == "google.protobuf.Timestamp":
            return datetime
        return field.message_type
    if field.type == FieldDescriptor.TYPE_ENUM:
        return field.enum_type
    return _SCALARS[field.type]


def _check_element(model: type, name: str, annotation: object, field: FieldDescriptor) -> None:
    expected = _expected_element(field)
    where = f"{model.__name__}.{name}"
    if isinstance(expected, Descriptor):
        assert isinstance(annotation, type) and issubclass(annotation, messages.Message), where
        assert annotation.proto_type.DESCRIPTOR.full_name == expected.full_name, where
    elif field.type == FieldDescriptor.TYPE_ENUM:
        assert isinstance(annotation, type) and issubclass(annotation, enum.StrEnum), where
        names = [v.name for v in sorted(expected.values, key=lambda v: v.number)]
        assert [member.value for member in annotation] == names, where
    else:
        assert annotation is expected, f"{where}: {annotation} vs {expected}"


@pytest.mark.parametrize("model", MODELS, ids=lambda cls: cls.__name__)
def test_each_model_has_exactly_the_fields_of_its_proto_message(model: type[messages.Message]) -> None:
    descriptor = model.proto_type.DESCRIPTOR
    assert set(model.model_fields) == {f.name for f in descriptor.fields}
    for field in descriptor.fields:
        annotation = _strip_optional(model.model_fields[field.name].annotation)
        if _is_map(field):
            assert typing.get_origin(annotation) is dict, field.name
            key, value = typing.get_args(annotation)
            assert key is str
            _check_element(model, field.name, value, field.message_type.fields_by_name["value"])
        elif field.is_repeated:
            assert typing.get_origin(annotation) is list, field.name
            (element,) = typing.get_args(annotation)
            _check_element(model, field.name, element, field)
        else:
            _check_element(model, field.name, annotation, field)


def _generated_messages(package: str) -> set[str]:
    """Full names of the top-level messages of `package` in every generated module."""
    names: set[str] = set()
    for info in pkgutil.walk_packages(pb.__path__, prefix=pb.__name__ + "."):
        module = importlib.import_module(info.name)
        file = getattr(module, "DESCRIPTOR", None)
        if file is not None and file.package == package:
            names.update(d.full_name for d in file.message_types_by_name.values())
    return names


@pytest.mark.parametrize("package", ["wasmcloud.runtime.v2", "wasmfleet.bus.v1"])
def test_every_message_of_the_schema_has_a_model(package: str) -> None:
    modelled = {m.proto_type.DESCRIPTOR.full_name for m in MODELS}
    generated = _generated_messages(package)
    assert generated, package
    # HostHeartbeatRequest wraps the heartbeat for upstream's gRPC service; on NATS the
    # heartbeat is published bare.
    assert generated - modelled == ({"wasmcloud.runtime.v2.HostHeartbeatRequest"} & generated)


@pytest.mark.parametrize(
    "model", [m for m in MODELS if m.proto_type.DESCRIPTOR.file.package == "wasmcloud.runtime.v2"],
    ids=lambda cls: cls.__name__,
)
def test_upstream_fields_are_numbered_densely_and_extensions_from_100_with_presence(
    model: type[messages.Message],
) -> None:
    fields = model.proto_type.DESCRIPTOR.fields
    upstream = sorted(f.number for f in fields if f.number < 100)
    assert upstream == list(range(1, len(upstream) + 1))
    for field in fields:
        if field.number >= 100:
            # Optional, or repeated (no presence in proto3: encode leaves it out when empty).
            assert field.has_presence or field.is_repeated, f"{model.__name__}.{field.name} must be optional"
            # ... and the model's default leaves it unset, so encode does not write it.
            assert field.json_name not in messages.to_dict(model())
