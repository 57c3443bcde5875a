"""Wire format of the operator <-> host protocol (wasmfleet.bus.messages).

Checks: output names are lowerCamel; snake_case names are accepted on input; 64-bit integers are
written as strings and read from strings or numbers; enums are written by name and read by name
or number, an unknown name leaves the field unset; timestamps are RFC 3339 with Z; nulls and
unknown fields are tolerated; every message round-trips; an upstream-shaped start request parses;
bad input raises DecodeError with a one-line reason naming the field; passwords never appear in a
repr.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from wasmfleet.bus import messages


def test_output_names_are_lower_camel() -> None:
    hb = messages.HostHeartbeat(id="h1", friendly_name="brave-fox-1234", os_arch="x86_64", http_port=8080)
    obj = json.loads(messages.encode(hb))
    assert obj["friendlyName"] == "brave-fox-1234"
    assert obj["osArch"] == "x86_64"
    assert obj["httpPort"] == 8080
    assert "friendly_name" not in obj
    assert set(obj) >= {
        "id", "hostname", "friendlyName", "version", "labels", "osArch", "osName", "osKernel",
        "systemCpuUsage", "systemMemoryTotal", "systemMemoryFree", "componentCount", "workloadCount",
        "imports", "exports", "httpPort", "environment",
    }


def test_snake_case_is_accepted_on_input() -> None:
    req = messages.decode(
        messages.WorkloadStartRequest,
        b'{"workload_id": "w1", "workload": {"wit_world": {"host_interfaces": '
        b'[{"namespace": "wasi", "package": "http", "interfaces": ["incoming-handler"]}]}}}',
    )
    assert req.workload_id == "w1"
    assert req.workload.wit_world.host_interfaces[0].interfaces == ["incoming-handler"]


def test_int64_fields_are_strings_on_the_wire_and_read_from_either() -> None:
    big = 2**62 + 1
    obj = messages.to_dict(messages.HostHeartbeat(system_memory_total=big, workload_count=3))
    assert obj["systemMemoryTotal"] == str(big)
    assert obj["workloadCount"] == "3"
    assert messages.decode(messages.HostHeartbeat, b'{"systemMemoryTotal": "17"}').system_memory_total == 17
    assert messages.decode(messages.HostHeartbeat, b'{"systemMemoryTotal": 17}').system_memory_total == 17
    # 32-bit integers stay JSON numbers, as protobuf-JSON says.
    assert obj["httpPort"] == 0


def test_enums_are_written_by_name_and_read_by_name_or_number() -> None:
    status = messages.WorkloadStatus(workload_id="w", workload_state=messages.WorkloadState.RUNNING)
    assert messages.to_dict(status)["workloadState"] == "WORKLOAD_STATE_RUNNING"
    for raw in ('"WORKLOAD_STATE_ERROR"', "5"):
        parsed = messages.decode(messages.WorkloadStatus, f'{{"workloadState": {raw}}}')
        assert parsed.workload_state is messages.WorkloadState.ERROR


def test_an_enum_name_the_schema_lacks_leaves_the_field_unset() -> None:
    # protobuf-JSON with unknown fields ignored (what a newer peer's value needs): the field stays
    # at its default rather than failing the whole message. The short name is not a protobuf name.
    for raw in ('"WORKLOAD_STATE_PAUSED"', '"ERROR"'):
        parsed = messages.decode(messages.WorkloadStatus, f'{{"workloadId": "w", "workloadState": {raw}}}')
        assert parsed.workload_id == "w"
        assert parsed.workload_state is messages.WorkloadState.UNSPECIFIED
    policy = messages.decode(messages.Component, b'{"imagePullPolicy": "IMAGE_PULL_POLICY_NEVER"}')
    assert policy.image_pull_policy is messages.ImagePullPolicy.NEVER


def test_timestamps_are_rfc3339_utc() -> None:
    hb = messages.HostHeartbeat(started_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
    assert messages.to_dict(hb)["startedAt"] == "2026-01-02T03:04:05Z"
    back = messages.decode(messages.HostHeartbeat, b'{"startedAt": "2026-01-02T03:04:05Z"}')
    assert back.started_at == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_nulls_unknown_fields_and_empty_payloads_are_tolerated() -> None:
    parsed = messages.decode(messages.Component, b'{"image": "x", "localResources": null, "futureField": 1}')
    assert parsed.image == "x"
    assert parsed.local_resources == messages.LocalResources()
    assert messages.decode(messages.HeartbeatRequest, b"") == messages.HeartbeatRequest()


def test_unset_oneof_members_are_left_out() -> None:
    vol = messages.Volume(name="data", empty_dir=messages.EmptyDirVolume())
    assert messages.to_dict(vol) == {"name": "data", "emptyDir": {}}
    host = messages.Volume(name="h", host_path=messages.HostPathVolume(local_path="/srv"))
    assert messages.to_dict(host) == {"name": "h", "hostPath": {"localPath": "/srv"}}


def _full_start_request() -> messages.WorkloadStartRequest:
    return messages.WorkloadStartRequest(
        workload_id="uid-1",
        workload=messages.Workload(
            namespace="default",
            name="hello",
            annotations={"a": "b"},
            service=messages.Service(image="svc.wasm", max_restarts=2**40),
            wit_world=messages.WitWorld(
                components=[
                    messages.Component(
                        image="ghcr.io/x/hello:1",
                        name="hello",
                        pool_size=2,
                        max_invocations=100,
                        max_concurrency=4,
                        image_pull_policy=messages.ImagePullPolicy.ALWAYS,
                        image_pull_secret=messages.ImagePullSecret(username="u", password="p"),
                        local_resources=messages.LocalResources(
                            memory_limit_mb=64,
                            config={"k": "v"},
                            environment={"E": "1"},
                            allowed_hosts=["example.com"],
                            volume_mounts=[messages.VolumeMount(name="d", mount_path="/d", read_only=True)],
                        ),
                    )
                ],
                host_interfaces=[
                    messages.WitInterface(
                        namespace="wasi", package="http", version="0.2.0",
                        interfaces=["incoming-handler"], config={"host": "hello.local"},
                    )
                ],
            ),
            volumes=[messages.Volume(name="d", empty_dir=messages.EmptyDirVolume())],
        ),
    )


@pytest.mark.parametrize(
    "msg",
    [
        _full_start_request(),
        messages.WorkloadStartResponse(
            workload_status=messages.WorkloadStatus(
                workload_id="w", workload_state=messages.WorkloadState.ERROR, message="pull failed"
            )
        ),
        messages.WorkloadStatusRequest(workload_id="w"),
        messages.WorkloadStatusResponse(),
        messages.WorkloadStopRequest(workload_id="w"),
        messages.WorkloadStopResponse(),
        messages.HostHeartbeat(
            id="h", labels={"hostgroup": "default"}, system_cpu_usage=12.5,
            started_at=datetime(2026, 1, 1, tzinfo=UTC),
            imports=[messages.WitInterface(namespace="wasi", package="config", interfaces=["store"])],
        ),
        messages.ErrorReply(error=messages.ErrorDetail(code=404, message="unknown command")),
    ],
    ids=lambda m: type(m).__name__,
)
def test_every_message_round_trips(msg: messages.Message) -> None:
    assert messages.decode(type(msg), messages.encode(msg)) == msg


def test_secret_passwords_stay_out_of_reprs() -> None:
    req = _full_start_request()
    assert "'p'" not in repr(req)
    assert "***" in repr(req.workload.wit_world.components[0].image_pull_secret)


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b"{not json", "not JSON"),
        (b"[1, 2]", "expected a JSON object"),
        (b'{"workloadId": {"x": 1}}', "field workloadId"),
        (b'{"workload": {"witWorld": {"components": [{"poolSize": "many"}]}}}', "poolSize"),
    ],
)
def test_bad_input_raises_decode_error_naming_the_problem(payload: bytes, expected: str) -> None:
    with pytest.raises(messages.DecodeError) as info:
        messages.decode(messages.WorkloadStartRequest, payload)
    assert expected in str(info.value)
    assert "\n" not in str(info.value)
