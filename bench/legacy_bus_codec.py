"""The protocol codec as it was before the .proto schema (commit fecddcc's wasmfleet/bus/messages.py):
pydantic models with a hand-written protobuf-JSON mapping. Kept only as a peer for bench/bus_codec.py,
so every run shows the current codec against the one it replaced; nothing imports it.
"""

from __future__ import annotations

import enum
import json
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    model_validator,
)
from pydantic.alias_generators import to_camel

# ---------------------------------------------------------------------------------------------------
# Scalar mappings


def _parse_int64(value: Any) -> Any:
    # protobuf-JSON writes 64-bit integers as strings (JavaScript numbers lose precision past 2**53)
    # but parsers must accept numbers too.
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            raise ValueError(f"expected a 64-bit integer, got {value!r}") from None
    return value


def _int64_to_json(value: int) -> str:
    return str(value)


Int64 = Annotated[
    int,
    BeforeValidator(_parse_int64),
    PlainSerializer(_int64_to_json, return_type=str, when_used="json"),
]
"""A uint64/int64 field: a string on the wire, a Python int in memory."""


def _parse_float(value: Any) -> Any:
    # protobuf-JSON accepts numbers as strings too ("NaN", "Infinity", "1.5").
    if isinstance(value, str):
        return float(value)
    return value


Float = Annotated[float, BeforeValidator(_parse_float)]


def _parse_timestamp(value: Any) -> Any:
    if isinstance(value, str) and value.endswith("Z"):
        return value[:-1] + "+00:00"
    return value


def _timestamp_to_json(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


Timestamp = Annotated[
    datetime,
    BeforeValidator(_parse_timestamp),
    PlainSerializer(_timestamp_to_json, return_type=str, when_used="json"),
]
"""google.protobuf.Timestamp: RFC 3339 in UTC with a trailing Z."""


class _ProtoEnum(enum.StrEnum):
    """An enum whose value is its protobuf name; also parses the field number and the short name."""

    @classmethod
    def _missing_(cls, value: object) -> _ProtoEnum | None:
        members = list(cls)
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(members):
            return members[value]  # declaration order == protobuf numbers 0..n
        if isinstance(value, str):
            wanted = value.strip().upper()
            for member in members:
                if member.value == wanted or member.value.endswith("_" + wanted):
                    return member
        return None


class WorkloadState(_ProtoEnum):
    UNSPECIFIED = "WORKLOAD_STATE_UNSPECIFIED"
    STARTING = "WORKLOAD_STATE_STARTING"
    RUNNING = "WORKLOAD_STATE_RUNNING"
    COMPLETED = "WORKLOAD_STATE_COMPLETED"
    STOPPING = "WORKLOAD_STATE_STOPPING"
    ERROR = "WORKLOAD_STATE_ERROR"
    NOT_FOUND = "WORKLOAD_STATE_NOT_FOUND"


class ImagePullPolicy(_ProtoEnum):
    UNSPECIFIED = "IMAGE_PULL_POLICY_UNSPECIFIED"
    ALWAYS = "IMAGE_PULL_POLICY_ALWAYS"
    IF_NOT_PRESENT = "IMAGE_PULL_POLICY_IF_NOT_PRESENT"
    NEVER = "IMAGE_PULL_POLICY_NEVER"


# ---------------------------------------------------------------------------------------------------
# Message base


class Message(BaseModel):
    """Base of every protocol message: camelCase on the wire, snake_case accepted, extras ignored."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        extra="ignore",
    )

    @model_validator(mode="before")
    @classmethod
    def _nulls_mean_unset(cls, data: Any) -> Any:
        # protobuf-JSON treats null as "field not set": drop nulls so defaults apply.
        if isinstance(data, dict):
            return {key: value for key, value in data.items() if value is not None}
        return data


class WitInterface(Message):
    """A WIT package's interfaces a host provides or a workload needs (wit_interface.proto)."""

    namespace: str = ""
    package: str = ""
    version: str = ""
    interfaces: list[str] = Field(default_factory=list)
    config: dict[str, str] = Field(default_factory=dict)
    name: str = ""
    external_id: str | None = None

    def key(self) -> str:
        """namespace:package[@version] - how WIT spells the package."""
        base = f"{self.namespace}:{self.package}"
        return f"{base}@{self.version}" if self.version else base


class HostHeartbeat(Message):
    """What a host reports about itself, periodically and on request (host_heartbeat.proto)."""

    id: str = ""
    hostname: str = ""
    friendly_name: str = ""
    version: str = ""
    labels: dict[str, str] = Field(default_factory=dict)
    started_at: Timestamp | None = None
    os_arch: str = ""
    os_name: str = ""
    os_kernel: str = ""
    system_cpu_usage: Float = 0.0
    system_memory_total: Int64 = 0
    system_memory_free: Int64 = 0
    component_count: Int64 = 0
    workload_count: Int64 = 0
    imports: list[WitInterface] = Field(default_factory=list)
    exports: list[WitInterface] = Field(default_factory=list)
    http_port: int = 0
    environment: str = ""


class HeartbeatRequest(Message):
    """The (empty) body of a runtime.host.<id>.heartbeat request."""


class ImagePullSecret(Message):
    """Registry credentials resolved by the operator from the image-pull Secret."""

    username: str = ""
    password: str = ""

    def __repr__(self) -> str:  # never print a password into a log line
        return f"ImagePullSecret(username={self.username!r}, password='***')"

    __str__ = __repr__


class VolumeMount(Message):
    name: str = ""
    mount_path: str = ""
    read_only: bool = False


class LocalResources(Message):
    """Per-component resources; limits <= 0 mean unset."""

    memory_limit_mb: int = 0
    cpu_limit: int = 0
    config: dict[str, str] = Field(default_factory=dict)
    environment: dict[str, str] = Field(default_factory=dict)
    volume_mounts: list[VolumeMount] = Field(default_factory=list)
    allowed_hosts: list[str] = Field(default_factory=list)
    allowed_ip_name_lookups: list[str] = Field(default_factory=list)
    allowed_host_loopback_ports: list[int] = Field(default_factory=list)


class Component(Message):
    """One component of a workload: its image and how to run it (limits <= 0 mean unset)."""

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

    image: str = ""
    local_resources: LocalResources = Field(default_factory=LocalResources)
    max_restarts: Int64 = 0
    image_pull_secret: ImagePullSecret | None = None
    image_pull_policy: ImagePullPolicy = ImagePullPolicy.UNSPECIFIED


class WitWorld(Message):
    components: list[Component] = Field(default_factory=list)
    host_interfaces: list[WitInterface] = Field(default_factory=list)


class HostPathVolume(Message):
    local_path: str = ""


class EmptyDirVolume(Message):
    pass


class Volume(Message):
    """A workload volume: exactly one of host_path / empty_dir (a protobuf oneof)."""

    name: str = ""
    host_path: HostPathVolume | None = None
    empty_dir: EmptyDirVolume | None = None


class Workload(Message):
    namespace: str = ""
    name: str = ""
    annotations: dict[str, str] = Field(default_factory=dict)
    service: Service | None = None
    wit_world: WitWorld = Field(default_factory=WitWorld)
    volumes: list[Volume] = Field(default_factory=list)


class WorkloadStatus(Message):
    workload_id: str = ""
    workload_state: WorkloadState = WorkloadState.UNSPECIFIED
    message: str = ""


class WorkloadStartRequest(Message):
    workload: Workload = Field(default_factory=Workload)
    workload_id: str = ""


class WorkloadStartResponse(Message):
    workload_status: WorkloadStatus = Field(default_factory=WorkloadStatus)


class WorkloadStatusRequest(Message):
    workload_id: str = ""


class WorkloadStatusResponse(Message):
    workload_status: WorkloadStatus = Field(default_factory=WorkloadStatus)


class WorkloadStopRequest(Message):
    workload_id: str = ""


class WorkloadStopResponse(Message):
    workload_status: WorkloadStatus = Field(default_factory=WorkloadStatus)


class WorkloadLogsRequest(Message):
    """wasmfleet extension: the newest guest output lines of a workload running on the host."""

    workload_id: str = ""
    tail_lines: int = 0
    """At most this many lines (the newest); <= 0 = as many as fit in one reply."""
    since_time: Timestamp | None = None
    """Only lines written at or after this time."""


class LogLine(Message):
    time: Timestamp | None = None
    stream: str = ""
    """stdout or stderr."""
    component: str = ""
    text: str = ""


class WorkloadLogsResponse(Message):
    workload_id: str = ""
    lines: list[LogLine] = Field(default_factory=list)
    """Oldest first."""
    truncated: bool = False
    """Older lines matched but were left out to keep the reply within one NATS message."""


class ErrorDetail(Message):
    code: int = 0
    message: str = ""


class ErrorReply(Message):
    """wasmfleet's reply to a request it cannot answer with the command's own response type
    (unknown command). Also signalled by the NATS headers Nats-Service-Error(-Code)."""

    error: ErrorDetail = Field(default_factory=ErrorDetail)


# ---------------------------------------------------------------------------------------------------
# Encoding

M = TypeVar("M", bound=Message)


class DecodeError(ValueError):
    """The bytes are not a valid protobuf-JSON encoding of the expected message."""


def encode(msg: Message) -> bytes:
    """protobuf-JSON bytes of a message (camelCase, int64 as strings, enums by name; unset
    optional sub-messages left out)."""
    return msg.model_dump_json(by_alias=True, exclude_none=True).encode()


def to_dict(msg: Message) -> dict[str, Any]:
    """The JSON object `encode` would write, as a dict."""
    return msg.model_dump(mode="json", by_alias=True, exclude_none=True)


def decode(message_type: type[M], data: bytes | str) -> M:
    """Parse protobuf-JSON into `message_type`; an empty payload is the empty message."""
    text = data.decode("utf-8", errors="replace") if isinstance(data, bytes | bytearray) else data
    if not text.strip():
        text = "{}"
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DecodeError(f"{message_type.__name__}: not JSON ({exc.msg} at char {exc.pos})") from exc
    if not isinstance(obj, dict):
        raise DecodeError(f"{message_type.__name__}: expected a JSON object, got {type(obj).__name__}")
    try:
        return message_type.model_validate(obj)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "(root)"
        raise DecodeError(f"{message_type.__name__}: field {where}: {first['msg']}") from exc
