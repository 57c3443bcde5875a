"""The fast codec paths of wasmfleet.bus.messages agree with protobuf's json_format.

Checks: for every message (a full start request, a host's heartbeat, statuses with and without
extensions, log replies, errors), `encode` writes the JSON object json_format writes and `to_dict`
returns it; decoding canonical payloads (ours, upstream's Go operator's and Rust host's, snake_case
with numeric enums) through the compiled decoders gives the models json_format gives, with the
same values and types; non-canonical payloads (an int64 as a float, an unknown enum name, a field
under both names, a timestamp with an offset, out-of-range numbers, wrong types) are decided as
json_format decides, errors included; a float32 is written in its shortest round-trip form; two
oneof members set keep the last; the decoders refuse a model whose fields or aliases drift from
the .proto.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import orjson
import pytest
from pydantic import Field

from wasmfleet.bus import compiled_codec, messages
from wasmfleet.bus.pb.wasmcloud.runtime.v2 import wit_interface_pb2

sys.path.insert(0, str(Path(__file__).parent))
import test_bus_wire_compat as wire


def _start_request() -> messages.WorkloadStartRequest:
    return messages.WorkloadStartRequest(
        workload_id="uid-1",
        workload=messages.Workload(
            namespace="default", name="hello", annotations={"a": "b", "wasmcloud.dev/x": "1"},
            service=messages.Service(image="svc.wasm", max_restarts=2**64 - 1,
                                     image_pull_policy=messages.ImagePullPolicy.NEVER),
            wit_world=messages.WitWorld(
                components=[messages.Component(
                    image="ghcr.io/x/hello:1", name="hello", pool_size=2, max_invocations=-1, max_concurrency=4,
                    image_pull_policy=messages.ImagePullPolicy.ALWAYS,
                    image_pull_secret=messages.ImagePullSecret(username="u", password="p"),
                    local_resources=messages.LocalResources(
                        memory_limit_mb=64, cpu_limit=2, config={"k": "v"}, environment={"E": "1"},
                        allowed_hosts=["example.com"], allowed_host_loopback_ports=["5432", "53/udp"],
                        volume_mounts=[messages.VolumeMount(name="d", mount_path="/d", read_only=True)]),
                ), messages.Component(image="lib.wasm")],
                host_interfaces=[
                    messages.WitInterface(namespace="wasi", package="http", version="0.2.0",
                                          interfaces=["incoming-handler"], config={"host": "h"}),
                    messages.WitInterface(namespace="wasi", package="keyvalue", name="cache", external_id="kv-1"),
                ],
            ),
            volumes=[messages.Volume(name="d", empty_dir=messages.EmptyDirVolume()),
                     messages.Volume(name="h", host_path=messages.HostPathVolume(local_path="/srv"))],
        ),
    )


MESSAGES: list[messages.Message] = [
    _start_request(),
    messages.WorkloadStartRequest(),
    messages.HostHeartbeat(
        id="h", hostname="10.0.0.1", friendly_name="brave-fox", labels={"zone": "a"}, system_cpu_usage=0.1,
        started_at=datetime(2026, 1, 2, 3, 4, 5, 123000, tzinfo=UTC), system_memory_total=2**40,
        workload_count=3, http_port=8000,
        imports=[messages.WitInterface(namespace="wasi", package="config", interfaces=["store"])],
        exports=[messages.WitInterface(namespace="wasi", package="http", interfaces=["incoming-handler"])],
    ),
    messages.HostHeartbeat(started_at=datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=timezone(timedelta(hours=2))),
                           system_cpu_usage=12.345678),
    messages.WorkloadStartResponse(workload_status=messages.WorkloadStatus(
        workload_id="w", workload_state=messages.WorkloadState.ERROR, message="pull failed", retryable=True)),
    messages.WorkloadStatusResponse(workload_status=messages.WorkloadStatus(
        workload_id="w", workload_state=messages.WorkloadState.RUNNING, components=[
            messages.ComponentStatus(name="c", role=messages.ComponentRole.HTTP,
                                     state=messages.ComponentState.RUNNING),
        ])),
    messages.WorkloadStopResponse(),
    messages.WorkloadLogsRequest(workload_id="w", tail_lines=10, since_time=datetime(2026, 1, 1, tzinfo=UTC)),
    messages.WorkloadLogsResponse(workload_id="w", truncated=True, lines=[
        messages.LogLine(time=datetime(2026, 1, 1, 0, 0, 1, 5, tzinfo=UTC), stream="stdout", component="c",
                         text="hi")]),
    messages.ErrorReply(error=messages.ErrorDetail(code=404, message="unknown command")),
    messages.HeartbeatRequest(),
]


def _same(a: messages.Message, b: messages.Message) -> None:
    assert a == b
    # Equal values of the same types (an enum member, not its text; an aware UTC datetime).
    for name in type(a).model_fields:
        x, y = getattr(a, name), getattr(b, name)
        assert type(x) is type(y), name
        if isinstance(x, messages.Message):
            _same(x, y)
        elif isinstance(x, datetime):
            assert x.utcoffset() == y.utcoffset() == timedelta(0)


@pytest.mark.parametrize("msg", MESSAGES, ids=lambda m: type(m).__name__)
def test_encode_writes_what_json_format_writes(msg: messages.Message) -> None:
    reference = messages.reference_to_dict(msg)
    assert orjson.loads(messages.encode(msg)) == reference
    assert messages.to_dict(msg) == reference


@pytest.mark.parametrize("msg", MESSAGES, ids=lambda m: type(m).__name__)
def test_decode_builds_what_json_format_builds(msg: messages.Message) -> None:
    wire_bytes = messages.encode(msg)
    decoder = messages._DECODERS[type(msg)]
    fast = decoder(orjson.loads(wire_bytes))  # the compiled path itself, not its fallback
    _same(fast, messages.reference_decode(type(msg), wire_bytes))
    assert messages.decode(type(msg), wire_bytes) == fast


@pytest.mark.parametrize(
    ("cls", "payload"),
    [
        (messages.WorkloadStartRequest, wire.UPSTREAM_GO_START),
        (messages.HostHeartbeat, wire.UPSTREAM_RUST_HEARTBEAT),
        (messages.WorkloadStatus, b'{"workload_id": "w", "workload_state": 2, "message": "ok"}'),
        (messages.WorkloadStartRequest, b'{"workload": {"service": {"max_restarts": 7, "image_pull_policy": 3}}}'),
        (messages.Component, b'{"image": "x", "localResources": null, "futureField": 1}'),
        (messages.HostHeartbeat, b'{"startedAt": "2026-01-02T03:04:05.5+02:00", "systemCpuUsage": 0.3}'),
    ],
)
def test_canonical_payloads_take_the_compiled_path(cls: type[messages.Message], payload: bytes) -> None:
    fast = messages._DECODERS[cls](orjson.loads(payload))
    _same(fast, messages.reference_decode(cls, payload))


@pytest.mark.parametrize(
    ("cls", "payload"),
    [
        (messages.HostHeartbeat, {"systemMemoryTotal": 17.0}),  # an int64 as a float
        (messages.HostHeartbeat, {"systemMemoryTotal": " 17"}),
        (messages.HostHeartbeat, {"startedAt": "2026-01-02 03:04:05Z"}),
        (messages.HostHeartbeat, {"systemCpuUsage": "-Infinity"}),
        (messages.HostHeartbeat, {"systemCpuUsage": 1e39}),
        (messages.HostHeartbeat, {"httpPort": 2**32}),
        (messages.HostHeartbeat, {"httpPort": True}),
        (messages.HostHeartbeat, {"friendlyName": "a", "friendly_name": "b"}),
        (messages.HostHeartbeat, {"labels": {"a": 1}}),
        (messages.HostHeartbeat, {"imports": [None]}),
        (messages.HostHeartbeat, {"imports": {"namespace": "wasi"}}),
        (messages.WorkloadStatus, {"workloadState": "WORKLOAD_STATE_PAUSED"}),
        (messages.WorkloadStatus, {"workloadState": 99}),
        (messages.WorkloadStatus, {"retryable": "yes"}),
        (messages.WorkloadStartRequest, {"workloadId": {"x": 1}}),
        (messages.WorkloadStartRequest, {"workload": {"witWorld": {"components": [{"poolSize": "many"}]}}}),
        (messages.WorkloadStartRequest, {"workload": {"volumes": [{"name": "v", "emptyDir": {}, "hostPath": {}}]}}),
    ],
)
def test_non_canonical_payloads_are_decided_by_json_format(cls: type[messages.Message], payload: object) -> None:
    data = json.dumps(payload)
    with pytest.raises(compiled_codec.Unsupported):
        messages._DECODERS[cls](orjson.loads(data))
    try:
        expected: messages.Message | str = messages.reference_decode(cls, data)
    except messages.DecodeError as exc:
        expected = str(exc)
    try:
        got: messages.Message | str = messages.decode(cls, data)
    except messages.DecodeError as exc:
        got = str(exc)
    assert got == expected


def test_float32_is_written_in_its_shortest_round_trip_form() -> None:
    for value, expected in ((0.1, 0.1), (12.5, 12.5), (0.123456789, 0.12345679), (3, 3.0)):
        hb = messages.HostHeartbeat(system_cpu_usage=value)
        assert json.loads(messages.encode(hb))["systemCpuUsage"] == expected
        assert messages.reference_to_dict(hb)["systemCpuUsage"] == expected


def test_two_oneof_members_keep_the_last_as_json_format_does() -> None:
    vol = messages.Volume(name="v", host_path=messages.HostPathVolume(local_path="/x"),
                          empty_dir=messages.EmptyDirVolume())
    assert json.loads(messages.encode(vol)) == messages.reference_to_dict(vol) == {"name": "v", "emptyDir": {}}


def test_a_model_that_drifts_from_the_proto_is_refused_at_compile_time() -> None:
    class Renamed(messages.Message):
        proto_type = wit_interface_pb2.WitInterface
        namespace: str = ""
        package: str = ""
        version: str = ""
        interfaces: list[str] = Field(default_factory=list)
        config: dict[str, str] = Field(default_factory=dict)
        name: str = ""
        extern_id: str | None = None

    with pytest.raises(TypeError, match=r"differ from the \.proto"):
        compiled_codec.compile_decoders([Renamed])

    class Aliased(messages.Message):
        proto_type = wit_interface_pb2.WitInterface
        namespace: str = Field(default="", alias="ns")
        package: str = ""
        version: str = ""
        interfaces: list[str] = Field(default_factory=list)
        config: dict[str, str] = Field(default_factory=dict)
        name: str = ""
        external_id: str | None = None

    with pytest.raises(TypeError, match="protobuf JSON name"):
        compiled_codec.compile_decoders([Aliased])
