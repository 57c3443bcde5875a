"""Wire compatibility of wasmfleet.bus.messages with upstream peers and with earlier wasmfleet.

Checks: a WorkloadStartRequest exactly as upstream's Go operator writes it (protojson.Marshal:
camelCase, fields in number order, defaults left out, uint64 as strings, enums by name) decodes to
the right values; a HostHeartbeat as upstream's Rust host writes it (pbjson: nanosecond timestamp,
uint64 strings) decodes; a document in snake_case with numeric enums and int64 numbers decodes to
the same values; what we write names only fields upstream's schema has (upstream's decoders reject
unknown fields) until a wasmfleet extension is set; the JSON of a full start request is the one
the earlier pydantic codec wrote (the operator fingerprints it, so it must not drift).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from wasmfleet.bus import messages

# As upstream's runtime-operator sends it (Go protojson.Marshal of runtimev2.WorkloadStartRequest).
UPSTREAM_GO_START = (
    b'{"workload":{"namespace":"default","name":"hello-7f9c","annotations":{"app":"hello"},'
    b'"service":{"image":"ghcr.io/example/svc:1","maxRestarts":"18446744073709551615",'
    b'"imagePullPolicy":"IMAGE_PULL_POLICY_NEVER"},'
    b'"witWorld":{"components":[{"image":"ghcr.io/example/hello:1.0","localResources":'
    b'{"memoryLimitMb":64,"config":{"k":"v"},"environment":{"RUST_LOG":"info"},'
    b'"volumeMounts":[{"name":"cache","mountPath":"/cache","readOnly":true}],'
    b'"allowedHosts":["api.example.com"],"allowedIpNameLookups":["*.example.com"],'
    b'"allowedHostLoopbackPorts":["5432","53/udp"]},'
    b'"poolSize":2,"maxInvocations":100,"imagePullSecret":{"username":"robot","password":"pw"},'
    b'"name":"hello","imagePullPolicy":"IMAGE_PULL_POLICY_IF_NOT_PRESENT","maxConcurrency":4}],'
    b'"hostInterfaces":[{"namespace":"wasi","package":"http","version":"0.2.0",'
    b'"interfaces":["incoming-handler"],"config":{"host":"hello.local"}},'
    b'{"namespace":"wasi","package":"keyvalue","interfaces":["store"],"name":"cache"}]},'
    b'"volumes":[{"name":"cache","emptyDir":{}},{"name":"data","hostPath":{"localPath":"/srv"}}]},'
    b'"workloadId":"0b8d3c9e-5f0a-4f5e-8a6e-3e2b9f1c7d40"}'
)

# As upstream's wash host publishes it (pbjson of HostHeartbeat; it leaves out default values).
UPSTREAM_RUST_HEARTBEAT = (
    b'{"id":"NAB7","hostname":"10.0.0.7","friendlyName":"quiet-river-0042","version":"2.7.0",'
    b'"labels":{"hostgroup":"edge"},"startedAt":"2026-12-01T08:00:00.123456789Z","osArch":"aarch64",'
    b'"osName":"linux","osKernel":"6.8.0","systemCpuUsage":7.25,"systemMemoryTotal":"34359738368",'
    b'"systemMemoryFree":"17179869184","workloadCount":"3",'
    b'"imports":[{"namespace":"wasi","package":"config","version":"0.2.0-rc.1","interfaces":["store"]}],'
    b'"httpPort":8000}'
)


def test_a_start_request_as_upstreams_go_operator_writes_it_decodes() -> None:
    req = messages.decode(messages.WorkloadStartRequest, UPSTREAM_GO_START)
    assert req.workload_id == "0b8d3c9e-5f0a-4f5e-8a6e-3e2b9f1c7d40"
    wl = req.workload
    assert (wl.namespace, wl.name, wl.annotations) == ("default", "hello-7f9c", {"app": "hello"})
    assert wl.service is not None
    assert wl.service.max_restarts == 2**64 - 1
    assert wl.service.image_pull_policy is messages.ImagePullPolicy.NEVER
    (comp,) = wl.wit_world.components
    assert (comp.pool_size, comp.max_invocations, comp.max_concurrency) == (2, 100, 4)
    assert comp.image_pull_policy is messages.ImagePullPolicy.IF_NOT_PRESENT
    assert comp.image_pull_secret == messages.ImagePullSecret(username="robot", password="pw")
    res = comp.local_resources
    assert res.memory_limit_mb == 64
    assert res.cpu_limit == 0  # left out by protojson: the default
    assert res.volume_mounts == [messages.VolumeMount(name="cache", mount_path="/cache", read_only=True)]
    assert res.allowed_host_loopback_ports == ["5432", "53/udp"]
    assert res.allowed_ip_name_lookups == ["*.example.com"]
    http, kv = wl.wit_world.host_interfaces
    assert http.key() == "wasi:http@0.2.0" and http.config == {"host": "hello.local"}
    assert kv.name == "cache" and kv.external_id is None
    assert wl.volumes == [
        messages.Volume(name="cache", empty_dir=messages.EmptyDirVolume()),
        messages.Volume(name="data", host_path=messages.HostPathVolume(local_path="/srv")),
    ]


def test_a_heartbeat_as_upstreams_rust_host_writes_it_decodes() -> None:
    hb = messages.decode(messages.HostHeartbeat, UPSTREAM_RUST_HEARTBEAT)
    assert hb.friendly_name == "quiet-river-0042"
    assert hb.started_at == datetime(2026, 12, 1, 8, 0, 0, 123456, tzinfo=UTC)  # ns cut to µs
    assert hb.system_memory_total == 32 * 2**30
    assert (hb.workload_count, hb.component_count) == (3, 0)
    assert hb.system_cpu_usage == 7.25
    assert hb.imports[0].key() == "wasi:config@0.2.0-rc.1"
    assert hb.exports == []


def test_snake_case_names_numeric_enums_and_int64_numbers_decode_the_same() -> None:
    snake = json.dumps({
        "workload_id": "w-2",
        "workload": {
            "service": {"image": "svc", "max_restarts": 7, "image_pull_policy": 3},
            "wit_world": {
                "components": [{"image": "c", "pool_size": 2, "image_pull_policy": 1,
                                "local_resources": {"memory_limit_mb": 64, "allowed_host_loopback_ports": ["5432"]}}],
                "host_interfaces": [{"namespace": "wasi", "package": "http", "interfaces": ["incoming-handler"]}],
            },
            "volumes": [{"name": "d", "host_path": {"local_path": "/srv"}}],
        },
    })
    camel = json.dumps({
        "workloadId": "w-2",
        "workload": {
            "service": {"image": "svc", "maxRestarts": "7", "imagePullPolicy": "IMAGE_PULL_POLICY_NEVER"},
            "witWorld": {
                "components": [{"image": "c", "poolSize": 2, "imagePullPolicy": "IMAGE_PULL_POLICY_ALWAYS",
                                "localResources": {"memoryLimitMb": 64, "allowedHostLoopbackPorts": ["5432"]}}],
                "hostInterfaces": [{"namespace": "wasi", "package": "http", "interfaces": ["incoming-handler"]}],
            },
            "volumes": [{"name": "d", "hostPath": {"localPath": "/srv"}}],
        },
    })
    from_snake = messages.decode(messages.WorkloadStartRequest, snake)
    assert from_snake == messages.decode(messages.WorkloadStartRequest, camel)
    assert from_snake.workload.service is not None
    assert from_snake.workload.service.image_pull_policy is messages.ImagePullPolicy.NEVER
    assert from_snake.workload.wit_world.components[0].image_pull_policy is messages.ImagePullPolicy.ALWAYS
    status = messages.decode(messages.WorkloadStatus, b'{"workload_id": "w", "workload_state": 2, "message": "ok"}')
    assert status.workload_state is messages.WorkloadState.RUNNING


def _field_names(obj: object, out: set[str]) -> set[str]:
    if isinstance(obj, dict):
        for key, value in obj.items():
            out.add(key)
            _field_names(value, out)
    elif isinstance(obj, list):
        for value in obj:
            _field_names(value, out)
    return out


def test_what_we_write_uses_only_upstream_fields_until_an_extension_is_set() -> None:
    extensions = {"retryable", "externalId"}
    req = messages.decode(messages.WorkloadStartRequest, UPSTREAM_GO_START)
    assert not extensions & _field_names(json.loads(messages.encode(req)), set())
    reply = messages.WorkloadStartResponse(workload_status=messages.WorkloadStatus(
        workload_id="w", workload_state=messages.WorkloadState.ERROR, message="registry said 503"))
    assert "retryable" not in json.loads(messages.encode(reply))["workloadStatus"]
    retry = reply.model_copy(update={"workload_status": reply.workload_status.model_copy(update={"retryable": True})})
    assert json.loads(messages.encode(retry))["workloadStatus"]["retryable"] is True
    assert messages.decode(messages.WorkloadStartResponse, messages.encode(retry)).workload_status.retryable


def test_a_full_start_request_encodes_as_the_earlier_codec_did() -> None:
    req = messages.WorkloadStartRequest(
        workload_id="uid-1",
        workload=messages.Workload(
            namespace="default", name="hello", annotations={"a": "b"},
            service=messages.Service(image="svc.wasm", max_restarts=2**40),
            wit_world=messages.WitWorld(
                components=[messages.Component(
                    image="ghcr.io/x/hello:1", name="hello", pool_size=2,
                    image_pull_policy=messages.ImagePullPolicy.ALWAYS,
                    image_pull_secret=messages.ImagePullSecret(username="u", password="p"),
                    local_resources=messages.LocalResources(memory_limit_mb=64, config={"k": "v"},
                                                            allowed_hosts=["example.com"]),
                )],
                host_interfaces=[messages.WitInterface(namespace="wasi", package="http",
                                                       interfaces=["incoming-handler"], config={"host": "h"})],
            ),
            volumes=[messages.Volume(name="d", empty_dir=messages.EmptyDirVolume())],
        ),
    )
    local = {"memoryLimitMb": 64, "cpuLimit": 0, "config": {"k": "v"}, "environment": {}, "volumeMounts": [],
             "allowedHosts": ["example.com"], "allowedIpNameLookups": [], "allowedHostLoopbackPorts": []}
    empty_local = {**local, "memoryLimitMb": 0, "config": {}, "allowedHosts": []}
    # Written by the pydantic codec this module replaced (commit a54e378), field for field.
    assert json.loads(messages.encode(req)) == {
        "workload": {
            "namespace": "default", "name": "hello", "annotations": {"a": "b"},
            "service": {"image": "svc.wasm", "localResources": empty_local, "maxRestarts": "1099511627776",
                        "imagePullPolicy": "IMAGE_PULL_POLICY_UNSPECIFIED"},
            "witWorld": {
                "components": [{"image": "ghcr.io/x/hello:1", "localResources": local, "poolSize": 2,
                                "maxInvocations": 0, "imagePullSecret": {"username": "u", "password": "p"},
                                "name": "hello", "imagePullPolicy": "IMAGE_PULL_POLICY_ALWAYS",
                                "maxConcurrency": 0}],
                "hostInterfaces": [{"namespace": "wasi", "package": "http", "version": "",
                                    "interfaces": ["incoming-handler"], "config": {"host": "h"}, "name": ""}],
            },
            "volumes": [{"name": "d", "emptyDir": {}}],
        },
        "workloadId": "uid-1",
    }
