"""Messages of the operator <-> host protocol, as in-process models over a protobuf schema.

The schema is the .proto files under proto/ (upstream wasmCloud v2's `wasmcloud.runtime.v2` package,
plus wasmfleet's own `wasmfleet.bus.v1` for the messages upstream lacks); `wasmfleet.bus.pb` is the
Python generated from them by scripts/gen-proto. The classes below are the pydantic models the
operator and the host build and read; each names its generated message in `proto_type`. On the
wire is protobuf's JSON mapping of those messages, which is what upstream writes and reads; the
reference for it is protobuf's own json_format, and two faster paths follow it (same JSON values;
keys in field order; a value assigned after construction with the wrong type, which pydantic does
not check, is written as pydantic infers it, with a warning, where json_format refused it):
`encode` is pydantic-core's JSON writer (the models' aliases are the JSON names and their
serializers json_format's scalar forms), `decode` a converter compiled from each message's
descriptor (bus/compiled_codec.py); anything but the canonical form goes through json_format:

- field names are lowerCamelCase on output; the proto (snake_case) name is accepted on input;
- 64-bit integers (uint64/int64) are written as JSON strings and accepted as strings or numbers;
- enums are written by name (``WORKLOAD_STATE_RUNNING``) and accepted by name or number; an enum
  name this schema does not know leaves the field unset, as protobuf does for a newer peer's value;
- timestamps are RFC 3339 strings in UTC;
- unknown fields are ignored on input (a newer peer may send more), nulls mean "unset".

`encode(msg)` and `decode(Type, data)` are the only entry points the agent and the operator need;
`decode` raises `DecodeError` with a one-line reason for anything that is not a valid message.
tests/unit/test_bus_schema.py keeps the models and the generated messages field-for-field equal.
"""

from __future__ import annotations

import enum
import re
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, TypeVar

import orjson
from google.protobuf import json_format
from google.protobuf.message import Message as ProtoMessage
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic.alias_generators import to_camel

from wasmfleet.bus import compiled_codec
from wasmfleet.bus.pb.wasmcloud.runtime.v2 import (
    host_heartbeat_pb2,
    wit_interface_pb2,
    workload_pb2,
    workload_service_pb2,
)
from wasmfleet.bus.pb.wasmfleet.bus.v1 import extensions_pb2

# ---------------------------------------------------------------------------------------------------
# Scalars


def _aware_utc(value: datetime) -> datetime:
    # A naive datetime built in-process is taken as UTC, so every timestamp has the offset
    # google.protobuf.Timestamp's JSON form requires.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


Timestamp = Annotated[
    datetime,
    AfterValidator(_aware_utc),
    PlainSerializer(compiled_codec.timestamp_to_json, return_type=str, when_used="json"),
]
"""google.protobuf.Timestamp: an aware datetime in memory, RFC 3339 in UTC on the wire (json_format's
digits: 0, 3 or 6 fractional)."""

UInt64 = Annotated[int, PlainSerializer(compiled_codec.uint64_to_json, return_type=str, when_used="json")]
"""A uint64 field: a decimal string on the wire (json_format's rule), an int in memory."""

Float32 = Annotated[float, PlainSerializer(compiled_codec.shortest_float32, return_type=float, when_used="json")]
"""A float field: on the wire, the value rounded to 32 bits in its shortest round-trip form."""


def _is_false(value: object) -> bool:
    # A wasmfleet extension field at its default stays off the wire (its proto field has presence):
    # upstream's decoders reject fields they do not know.
    return value is False


def _is_empty(value: object) -> bool:
    # A repeated wasmfleet extension field with no entries stays off the wire (see _is_false).
    return isinstance(value, list) and not value


class ComponentRole(enum.StrEnum):
    """What a host does with one component of a workload (ComponentStatus.role)."""

    HTTP = "http"
    """Serves the workload's HTTP: the first component, in manifest order, exporting
    wasi:http/incoming-handler."""
    MESSAGING_HANDLER = "messaging-handler"
    """Exports wasmcloud:messaging/handler: invoked for messages on its subscriptions."""
    LIBRARY = "library"
    """Called only by the workload's other components, through the interfaces it exports."""
    SERVICE = "service"
    """A long-running wasi:cli/run component (the workload's service)."""


class ComponentState(enum.StrEnum):
    """ComponentStatus.state."""

    RUNNING = "running"
    """The host calls it (HTTP requests routed to it, messages delivered to it)."""
    LINKED = "linked"
    """Instantiated with a component the host calls, for every call of that component."""
    IDLE = "idle"
    """Compiled and checked, but nothing calls it."""


class ServiceState(enum.StrEnum):
    """ServiceStatus.state: where the host's supervision of a workload's service stands."""

    RUNNING = "running"
    """A run of its wasi:cli/run is in progress."""
    RESTARTING = "restarting"
    """The last run failed (an error exit or a trap); the next one starts after a backoff."""
    FAILED = "failed"
    """It failed again after maxRestarts restarts: not restarted until the workload is started anew."""
    COMPLETED = "completed"
    """It exited with code 0: done, not restarted."""
    STOPPING = "stopping"
    """The workload is stopping: the run was cancelled."""


class WorkloadState(enum.StrEnum):
    """wasmcloud.runtime.v2.WorkloadState: each value is the protobuf enum name."""

    UNSPECIFIED = "WORKLOAD_STATE_UNSPECIFIED"
    STARTING = "WORKLOAD_STATE_STARTING"
    RUNNING = "WORKLOAD_STATE_RUNNING"
    COMPLETED = "WORKLOAD_STATE_COMPLETED"
    STOPPING = "WORKLOAD_STATE_STOPPING"
    ERROR = "WORKLOAD_STATE_ERROR"
    NOT_FOUND = "WORKLOAD_STATE_NOT_FOUND"


class ImagePullPolicy(enum.StrEnum):
    """wasmcloud.runtime.v2.ImagePullPolicy: each value is the protobuf enum name."""

    UNSPECIFIED = "IMAGE_PULL_POLICY_UNSPECIFIED"
    ALWAYS = "IMAGE_PULL_POLICY_ALWAYS"
    IF_NOT_PRESENT = "IMAGE_PULL_POLICY_IF_NOT_PRESENT"
    NEVER = "IMAGE_PULL_POLICY_NEVER"


# ---------------------------------------------------------------------------------------------------
# Message base


class Message(BaseModel):
    """Base of every protocol message. `proto_type` is its generated protobuf message class."""

    proto_type: ClassVar[type[ProtoMessage]]

    # Validating from a dict takes the proto (snake_case) names and the JSON (camelCase) names alike,
    # as protobuf-JSON does; code and tests build models from either.
    model_config = ConfigDict(
        alias_generator=to_camel, validate_by_name=True, validate_by_alias=True, extra="ignore"
    )

    @model_validator(mode="before")
    @classmethod
    def _nulls_mean_unset(cls, data: Any) -> Any:
        # As in protobuf-JSON, None for a field means "not set": drop it so the default applies.
        if isinstance(data, dict):
            return {key: value for key, value in data.items() if value is not None}
        return data


# ---------------------------------------------------------------------------------------------------
# wasmcloud.runtime.v2 (wit_interface.proto, host_heartbeat.proto, workload.proto, workload_service.proto)


class WitInterface(Message):
    """A WIT package's interfaces a host provides or a workload needs."""

    proto_type = wit_interface_pb2.WitInterface

    namespace: str = ""
    package: str = ""
    version: str = ""
    interfaces: list[str] = Field(default_factory=list)
    config: dict[str, str] = Field(default_factory=dict)
    name: str = ""
    external_id: str | None = None
    """wasmfleet extension (field 100), sent only when set."""

    def key(self) -> str:
        """namespace:package[@version] - how WIT spells the package."""
        base = f"{self.namespace}:{self.package}"
        return f"{base}@{self.version}" if self.version else base


class HostHeartbeat(Message):
    """What a host reports about itself, periodically and on request."""

    proto_type = host_heartbeat_pb2.HostHeartbeat

    id: str = ""
    hostname: str = ""
    friendly_name: str = ""
    version: str = ""
    labels: dict[str, str] = Field(default_factory=dict)
    started_at: Timestamp | None = None
    os_arch: str = ""
    os_name: str = ""
    os_kernel: str = ""
    system_cpu_usage: Float32 = 0.0
    system_memory_total: UInt64 = 0
    system_memory_free: UInt64 = 0
    component_count: UInt64 = 0
    workload_count: UInt64 = 0
    imports: list[WitInterface] = Field(default_factory=list)
    exports: list[WitInterface] = Field(default_factory=list)
    http_port: int = 0
    environment: str = ""


class ImagePullSecret(Message):
    """Registry credentials resolved by the operator from the image-pull Secret."""

    proto_type = workload_pb2.ImagePullSecret

    username: str = ""
    password: str = ""

    def __repr__(self) -> str:  # never print a password into a log line
        return f"ImagePullSecret(username={self.username!r}, password='***')"

    __str__ = __repr__


class VolumeMount(Message):
    proto_type = workload_pb2.VolumeMount

    name: str = ""
    mount_path: str = ""
    read_only: bool = False


class LocalResources(Message):
    """Per-component resources; limits <= 0 mean unset."""

    proto_type = workload_pb2.LocalResources

    memory_limit_mb: int = 0
    cpu_limit: int = 0
    config: dict[str, str] = Field(default_factory=dict)
    environment: dict[str, str] = Field(default_factory=dict)
    volume_mounts: list[VolumeMount] = Field(default_factory=list)
    allowed_hosts: list[str] = Field(default_factory=list)
    allowed_ip_name_lookups: list[str] = Field(default_factory=list)
    allowed_host_loopback_ports: list[str] = Field(default_factory=list)
    """Each "PORT" or "PORT/tcp|udp" (strings, as upstream); an int port given in-process is
    taken as its decimal string."""

    @field_validator("allowed_host_loopback_ports", mode="before")
    @classmethod
    def _ports_as_text(cls, value: Any) -> Any:
        # In-process convenience (the operator's API model holds int ports), not wire mapping:
        # decode only ever hands strings here.
        if isinstance(value, list):
            return [str(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in value]
        return value


class Component(Message):
    """One component of a workload: its image and how to run it (limits <= 0 mean unset)."""

    proto_type = workload_pb2.Component

    image: str = ""
    local_resources: LocalResources = Field(default_factory=LocalResources)
    pool_size: int = 0
    max_invocations: int = 0
    image_pull_secret: ImagePullSecret | None = None
    name: str = ""
    image_pull_policy: ImagePullPolicy = ImagePullPolicy.UNSPECIFIED
    max_concurrency: int = 0


class Service(Message):
    """The long-running wasi:cli/run component of a workload."""

    proto_type = workload_pb2.Service

    image: str = ""
    local_resources: LocalResources = Field(default_factory=LocalResources)
    max_restarts: UInt64 = 0
    image_pull_secret: ImagePullSecret | None = None
    image_pull_policy: ImagePullPolicy = ImagePullPolicy.UNSPECIFIED


class WitWorld(Message):
    proto_type = workload_pb2.WitWorld

    components: list[Component] = Field(default_factory=list)
    host_interfaces: list[WitInterface] = Field(default_factory=list)


class HostPathVolume(Message):
    proto_type = workload_pb2.HostPathVolume

    local_path: str = ""


class EmptyDirVolume(Message):
    proto_type = workload_pb2.EmptyDirVolume


class Volume(Message):
    """A workload volume: exactly one of host_path / empty_dir (a protobuf oneof)."""

    proto_type = workload_pb2.Volume

    name: str = ""
    host_path: HostPathVolume | None = None
    empty_dir: EmptyDirVolume | None = None

    @model_serializer(mode="wrap")
    def _one_volume_type(self, handler: SerializerFunctionWrapHandler, info: SerializationInfo) -> Any:
        # Both members set: json_format keeps the last one (setting a oneof member clears the
        # others); the encoder's fallback path (through to_proto, not JSON mode) does that.
        if info.mode_is_json() and self.host_path is not None and self.empty_dir is not None:
            raise compiled_codec.Unsupported
        return handler(self)


class Workload(Message):
    proto_type = workload_pb2.Workload

    namespace: str = ""
    name: str = ""
    annotations: dict[str, str] = Field(default_factory=dict)
    service: Service | None = None
    wit_world: WitWorld = Field(default_factory=WitWorld)
    volumes: list[Volume] = Field(default_factory=list)


class ComponentStatus(Message):
    """wasmfleet extension: one component of a running workload (WorkloadStatus.components)."""

    proto_type = extensions_pb2.ComponentStatus

    name: str = ""
    role: str = ""
    """A ComponentRole value (a string on the wire: a newer peer may add roles)."""
    state: str = ""
    """A ComponentState value."""
    message: str = ""


class ServiceStatus(Message):
    """wasmfleet extension: a workload's service as its host supervises it (WorkloadStatus.service)."""

    proto_type = extensions_pb2.ServiceStatus

    state: str = ""
    """A ServiceState value (a string on the wire: a newer peer may add states)."""
    restart_count: int = 0
    max_restarts: int = 0
    last_exit_code: int | None = None
    """Exit code of the last run that ended (134 for a trap); None before any ended."""
    last_error: str = ""
    """Why the last failed run ended, one line ("exit code 1", "trap: ..."); "" if none failed."""
    last_exit_time: Timestamp | None = None
    message: str = ""


class WorkloadStatus(Message):
    proto_type = workload_service_pb2.WorkloadStatus

    workload_id: str = ""
    workload_state: WorkloadState = WorkloadState.UNSPECIFIED
    message: str = ""
    retryable: bool = Field(default=False, exclude_if=_is_false)
    """wasmfleet extension (field 100): for ERROR, whether starting again may succeed. Sent only
    when true: upstream's decoders reject a field they do not know."""
    components: list[ComponentStatus] = Field(default_factory=list, exclude_if=_is_empty)
    """wasmfleet extension (field 101): for RUNNING, each component with its role and state.
    Sent only when non-empty, for the same reason."""
    service: ServiceStatus | None = None
    """wasmfleet extension (field 102): for RUNNING with a service, how the service runs. Sent
    only when set."""


class WorkloadStartRequest(Message):
    proto_type = workload_service_pb2.WorkloadStartRequest

    workload: Workload = Field(default_factory=Workload)
    workload_id: str = ""


class WorkloadStartResponse(Message):
    proto_type = workload_service_pb2.WorkloadStartResponse

    workload_status: WorkloadStatus = Field(default_factory=WorkloadStatus)


class WorkloadStatusRequest(Message):
    proto_type = workload_service_pb2.WorkloadStatusRequest

    workload_id: str = ""


class WorkloadStatusResponse(Message):
    proto_type = workload_service_pb2.WorkloadStatusResponse

    workload_status: WorkloadStatus = Field(default_factory=WorkloadStatus)


class WorkloadStopRequest(Message):
    proto_type = workload_service_pb2.WorkloadStopRequest

    workload_id: str = ""


class WorkloadStopResponse(Message):
    proto_type = workload_service_pb2.WorkloadStopResponse

    workload_status: WorkloadStatus = Field(default_factory=WorkloadStatus)


# ---------------------------------------------------------------------------------------------------
# wasmfleet.bus.v1 (extensions.proto): what upstream's protocol lacks


class HeartbeatRequest(Message):
    """The (empty) body of a runtime.host.<id>.heartbeat request."""

    proto_type = extensions_pb2.HeartbeatRequest


class WorkloadLogsRequest(Message):
    """The newest guest output lines of a workload running on the host."""

    proto_type = extensions_pb2.WorkloadLogsRequest

    workload_id: str = ""
    tail_lines: int = 0
    """At most this many lines (the newest); <= 0 = as many as fit in one reply."""
    since_time: Timestamp | None = None
    """Only lines written at or after this time."""


class LogLine(Message):
    proto_type = extensions_pb2.LogLine

    time: Timestamp | None = None
    stream: str = ""
    """stdout or stderr."""
    component: str = ""
    text: str = ""


class WorkloadLogsResponse(Message):
    proto_type = extensions_pb2.WorkloadLogsResponse

    workload_id: str = ""
    lines: list[LogLine] = Field(default_factory=list)
    """Oldest first."""
    truncated: bool = False
    """Older lines matched but were left out to keep the reply within one NATS message."""


class ErrorDetail(Message):
    proto_type = extensions_pb2.ErrorDetail

    code: int = 0
    message: str = ""


class ErrorReply(Message):
    """wasmfleet's reply to a request it cannot answer with the command's own response type
    (unknown command). Also signalled by the NATS headers Nats-Service-Error(-Code)."""

    proto_type = extensions_pb2.ErrorReply

    error: ErrorDetail = Field(default_factory=ErrorDetail)


# ---------------------------------------------------------------------------------------------------
# Encoding: protobuf's JSON mapping on the generated message, nothing per field here.

M = TypeVar("M", bound=Message)


class DecodeError(ValueError):
    """The bytes are not a valid protobuf-JSON encoding of the expected message."""


class EncodeError(ValueError):
    """A model holds a value its protobuf field cannot (an int out of the field's range)."""


def to_proto(msg: Message) -> ProtoMessage:
    """The generated protobuf message holding the same values as `msg`.

    protobuf's own constructor (C, in the upb backend) takes the model's snake_case dict as it is:
    nested dicts for sub-messages, enum names, datetimes for Timestamps; it checks types and ranges.
    """
    try:
        return msg.proto_type(**msg.model_dump(exclude_none=True))
    except (ValueError, TypeError) as exc:
        raise EncodeError(f"{type(msg).__name__}: {exc}") from exc


def from_proto(message_type: type[M], proto: ProtoMessage) -> M:
    """The model of a generated protobuf message."""
    return message_type.model_validate(json_format.MessageToDict(proto, preserving_proto_field_name=True))


EXTENSION_FIELDS_FROM = compiled_codec.EXTENSION_FIELDS_FROM


def reference_to_dict(msg: Message) -> dict[str, Any]:
    """`to_dict` through json_format on the generated message: the reference the compiled codec
    follows, and the path it hands anything unusual to."""
    proto = to_proto(msg)
    out = json_format.MessageToDict(proto, always_print_fields_with_no_presence=True)
    _drop_empty_extensions(proto, out)
    return out


def to_dict(msg: Message) -> dict[str, Any]:
    """The JSON object `encode` writes, as a dict (every field without presence, set or not,
    except wasmfleet's repeated extension fields, which are left out when empty)."""
    try:
        out: dict[str, Any] = msg.model_dump(mode="json", by_alias=True, exclude_none=True)
        return out
    except (ValueError, compiled_codec.Unsupported):
        return reference_to_dict(msg)  # a value the schema's type does not take as it is: json_format decides


def _drop_empty_extensions(proto: ProtoMessage, out: dict[str, Any]) -> None:
    # A repeated field has no presence, so json_format prints it even when empty; an empty
    # wasmfleet extension must stay off the wire like the optional ones (see _is_false).
    for field in proto.DESCRIPTOR.fields:
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            continue
        repeated = bool(field.is_repeated)
        if repeated and field.number >= EXTENSION_FIELDS_FROM and out.get(field.json_name) == []:
            out.pop(field.json_name)
        elif field.message_type is not None and field.json_name in out:
            values = getattr(proto, field.name)
            items = list(values) if repeated else [values]
            dicts = out[field.json_name] if repeated else [out[field.json_name]]
            for sub, sub_out in zip(items, dicts, strict=False):
                if isinstance(sub_out, dict):
                    _drop_empty_extensions(sub, sub_out)


def encode(msg: Message) -> bytes:
    """protobuf-JSON bytes of a message (camelCase, int64 as strings, enums by name; unset
    optional sub-messages left out).

    pydantic-core writes the JSON (the models' aliases are the fields' json_name, their serializers
    json_format's scalar forms, checked at import by compiled_codec); a value the field's type does
    not take as it is goes through json_format instead, which converts or refuses it."""
    try:
        return msg.__pydantic_serializer__.to_json(msg, by_alias=True, exclude_none=True)
    except (ValueError, compiled_codec.Unsupported):
        return orjson.dumps(reference_to_dict(msg))


def _parse_json(name: str, data: bytes | str) -> dict[str, Any] | None:
    """The JSON object in `data`; None for an empty payload (the empty message)."""
    raw = data.encode() if isinstance(data, str) else bytes(data)
    if not raw.strip():
        return None
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise DecodeError(f"{name}: not JSON ({exc.msg} at char {exc.pos})") from exc
    if not isinstance(obj, dict):
        raise DecodeError(f"{name}: expected a JSON object, got {type(obj).__name__}")
    return obj


def decode(message_type: type[M], data: bytes | str) -> M:
    """Parse protobuf-JSON into `message_type`; an empty payload is the empty message."""
    obj = _parse_json(message_type.__name__, data)
    if obj is None:
        return message_type()
    decoder = _DECODERS.get(message_type)
    if decoder is not None:
        try:
            decoded: M = decoder(obj)
            return decoded
        except compiled_codec.Unsupported:
            pass  # not the plain canonical form (or not valid): json_format decides and words errors
    return _reference_from_dict(message_type, obj)


def reference_decode(message_type: type[M], data: bytes | str) -> M:
    """`decode` through json_format alone: the reference the compiled codec follows."""
    obj = _parse_json(message_type.__name__, data)
    return message_type() if obj is None else _reference_from_dict(message_type, obj)


def _reference_from_dict(message_type: type[M], obj: dict[str, Any]) -> M:
    name = message_type.__name__
    proto = message_type.proto_type()
    try:
        json_format.ParseDict(obj, proto, ignore_unknown_fields=True)
    except json_format.ParseError as exc:
        raise DecodeError(f"{name}: {_reason(exc)}") from exc
    try:
        return from_proto(message_type, proto)
    except ValidationError as exc:  # the model and the schema disagree, or an enum number is unknown
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "(root)"
        raise DecodeError(f"{name}: field {where}: {first['msg']}") from exc


_FIELD_PREFIX = re.compile(r"Failed to parse (\w+) field: ")
_PATH_SUFFIX = re.compile(r"\s+at [\w.\[\]]+\.?$")


def _reason(exc: json_format.ParseError) -> str:
    """One line from json_format's nested "Failed to parse a field: Failed to parse b field: why"."""
    text = " ".join(str(exc).split())
    path: list[str] = []
    while match := _FIELD_PREFIX.match(text):
        path.append(match.group(1))
        text = text[match.end():]
    text = _PATH_SUFFIX.sub("", text.rstrip(".")).rstrip(".")
    return f"field {'.'.join(path)}: {text}" if path else text


# Compiled once, for every model above (straight-line decoders; see compiled_codec).
_DECODERS = compiled_codec.compile_decoders(
    model for model in list(globals().values())
    if isinstance(model, type) and issubclass(model, Message) and model is not Message
)
