"""The host agent on a real nats-server, serving a real component over real HTTP.

Checks: start -> RUNNING and HTTP served for the workload's Host name (400 without Host, 404 for an
unknown one); stop -> 404 and status NOT_FOUND; a duplicate start (concurrent and repeated) returns
the same workload with no second copy; snake_case names, enum numbers and quoted numbers are
understood; undecodable, incomplete and unknown requests get error replies (never silence); a bad
image or a non-component answers ERROR with a one-line reason, and a later start of the same
workloadId tries again; a slow fetch delays neither heartbeat requests nor status, and a stop during
it cancels the start; heartbeats carry every field from the real machine; ephemeral volumes are
per-workload and removed on stop; after nats-server is killed and restarted the host reconnects,
publishes a heartbeat at once, and the workload keeps serving throughout; with two worker processes
start and stop reach both; /metrics counts workloads, starts, commands, requests and heartbeats and
/readyz turns 503 without NATS; a component pulled from a real docker-registry with basic-auth
credentials runs; an ERROR says whether retrying can help (`retryable`): false for an image the real
registry does not have (404) and for a file that is not a component, true when the registry is down
(nothing listening) or answers 503.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import aiohttp.web
import nats
import pytest
from slow_source import serving_slowly

from wasmfleet.artifacts.fetching import ArtifactSettings
from wasmfleet.bus import messages, subjects
from wasmfleet.host.agent import Agent
from wasmfleet.host.policy import HostPolicy
from wasmfleet.host.settings import BusSettings, HostSettings, Identity, LifecycleSettings, ServingSettings
from wasmfleet.testing.nats import NatsServer, nats_server
from wasmfleet.testing.oci_registry_server import push_wasm, running_registry

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.components.build import build_component, cache_dir

State = messages.WorkloadState


@pytest.fixture(scope="module")
def hello_wasm() -> Path:
    return build_component("hello-wat")


@pytest.fixture
def bus(tmp_path: Path) -> Iterator[NatsServer]:
    with nats_server(tmp_path / "nats") as server:
        yield server


def host_settings(tmp_path: Path, url: str, **identity: str) -> HostSettings:
    return HostSettings(
        identity=Identity(labels={"hostgroup": "test", "zone": "a"}, environment="dev", **identity),
        bus=BusSettings(nats_url=url, heartbeat_interval_s=0.3, reconnect_wait_s=0.1),
        serving=ServingSettings(http_host="127.0.0.1", http_port=0, workers=1),
        lifecycle=LifecycleSettings(drain_timeout_s=3, data_dir=tmp_path / "host"),
        artifacts=ArtifactSettings(cache_dir=tmp_path / "artifacts"),
        runtime_cache_dir=tmp_path / "compiled",
        policy=HostPolicy.allowing(cache_dir(), tmp_path),  # the built test guests and files of the test
    )


@pytest.fixture
async def agent(tmp_path: Path, bus: NatsServer) -> AsyncIterator[Agent]:
    host = Agent(host_settings(tmp_path, bus.url))
    await host.start()
    try:
        yield host
    finally:
        await host.shutdown()


@pytest.fixture
async def nc(bus: NatsServer) -> AsyncIterator[nats.aio.client.Client]:
    client = await nats.connect(bus.url, reconnect_time_wait=0.1, max_reconnect_attempts=-1)
    try:
        yield client
    finally:
        await client.close()


def start_request(workload_id: str, image: str, host: str = "hello.test", **component: object) -> bytes:
    return messages.encode(
        messages.WorkloadStartRequest(
            workload_id=workload_id,
            workload=messages.Workload(
                namespace="default",
                name=workload_id,
                wit_world=messages.WitWorld(
                    components=[messages.Component(name="hello", image=image, **component)],  # type: ignore[arg-type]
                    host_interfaces=[
                        messages.WitInterface(
                            namespace="wasi", package="http", interfaces=["incoming-handler"],
                            config={"host": host},
                        )
                    ],
                ),
            ),
        )
    )


async def ask(nc: nats.aio.client.Client, agent: Agent, command: str, payload: bytes, timeout: float = 30) -> dict:
    reply = await nc.request(subjects.host_command(agent.host_id, command), payload, timeout=timeout)
    return json.loads(reply.data)


async def start(nc: nats.aio.client.Client, agent: Agent, workload_id: str, image: str, **kw: object) -> dict:
    body = await ask(nc, agent, subjects.WORKLOAD_START, start_request(workload_id, image, **kw))
    return body["workloadStatus"]


async def http_get(port: int, host: str, path: str = "/") -> tuple[int, str]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}{path}", headers={"Host": host}) as response,
    ):
        return response.status, await response.text()


async def test_start_serves_http_and_stop_removes_it(
    agent: Agent, nc: nats.aio.client.Client, hello_wasm: Path
) -> None:
    status = await start(nc, agent, "w1", f"file://{hello_wasm}")
    assert status["workloadState"] == "WORKLOAD_STATE_RUNNING", status
    assert status["workloadId"] == "w1"
    assert await http_get(agent.http_port, "hello.test") == (200, "hello from wat\n")
    assert (await http_get(agent.http_port, "hello.test:8080"))[0] == 200  # port stripped
    assert (await http_get(agent.http_port, "other.test"))[0] == 404
    reader, writer = await asyncio.open_connection("127.0.0.1", agent.http_port)
    writer.write(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n")  # no Host header at all
    assert (await reader.readline()).split()[1] == b"400"
    writer.close()
    body = await ask(nc, agent, subjects.WORKLOAD_STATUS, b'{"workloadId": "w1"}')
    assert body["workloadStatus"]["workloadState"] == "WORKLOAD_STATE_RUNNING"

    body = await ask(nc, agent, subjects.WORKLOAD_STOP, b'{"workloadId": "w1"}')
    assert body["workloadStatus"]["workloadState"] == "WORKLOAD_STATE_STOPPING"
    assert (await http_get(agent.http_port, "hello.test"))[0] == 404
    body = await ask(nc, agent, subjects.WORKLOAD_STATUS, b'{"workloadId": "w1"}')
    assert body["workloadStatus"]["workloadState"] == "WORKLOAD_STATE_NOT_FOUND"
    body = await ask(nc, agent, subjects.WORKLOAD_STOP, b'{"workloadId": "w1"}')  # repeat: safe
    assert body["workloadStatus"]["workloadState"] == "WORKLOAD_STATE_NOT_FOUND"


async def test_with_worker_processes_start_and_stop_reach_every_worker(
    tmp_path: Path, bus: NatsServer, nc: nats.aio.client.Client, hello_wasm: Path
) -> None:
    settings = host_settings(tmp_path, bus.url)
    agent = Agent(dataclasses.replace(settings, serving=dataclasses.replace(settings.serving, workers=2)))
    await agent.start()
    try:
        status = await start(nc, agent, "multi", f"file://{hello_wasm}")
        assert status["workloadState"] == "WORKLOAD_STATE_RUNNING"
        # new connections land on either worker (SO_REUSEPORT): all must serve, then all must 404
        assert {(await http_get(agent.http_port, "hello.test"))[0] for _ in range(12)} == {200}
        await ask(nc, agent, subjects.WORKLOAD_STOP, b'{"workloadId": "multi"}')
        assert {(await http_get(agent.http_port, "hello.test"))[0] for _ in range(12)} == {404}
    finally:
        await agent.shutdown()


async def test_metrics_and_probes(
    tmp_path: Path, bus: NatsServer, nc: nats.aio.client.Client, hello_wasm: Path
) -> None:
    settings = host_settings(tmp_path, bus.url)
    agent = Agent(dataclasses.replace(settings, serving=dataclasses.replace(settings.serving, metrics_port=0)))
    await agent.start()
    try:
        base = f"http://127.0.0.1:{agent.metrics_port}"
        assert (await start(nc, agent, "m", f"file://{hello_wasm}"))["workloadState"] == "WORKLOAD_STATE_RUNNING"
        await nc.request(f"runtime.host.{agent.host_id}.nonsense", b"{}", timeout=5)
        for _ in range(3):
            assert (await http_get(agent.http_port, "hello.test"))[0] == 200
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{base}/metrics") as response:
                text = await response.text()
            async with session.get(f"{base}/readyz") as response:
                assert response.status == 200
            for line in (
                'wasmfleet_host_workloads{state="running"} 1.0',
                "wasmfleet_host_components 1.0",
                'wasmfleet_host_workload_starts_total{result="running"} 1.0',
                'wasmfleet_host_commands_total{command="workload.start",outcome="ok"} 1.0',
                'wasmfleet_host_commands_total{command="unknown",outcome="unknown"} 1.0',
                'wasmfleet_host_http_requests_total{workload="m"} 3.0',
                "wasmfleet_host_nats_connected 1.0",
            ):
                assert line in text, line
            assert "wasmfleet_host_workload_start_seconds_count 1.0" in text
            assert "wasmfleet_host_heartbeats_published_total 0.0" not in text

            await nc.close()  # not left reconnecting when the test ends
            bus.kill()
            deadline = time.monotonic() + 5
            status, body = 200, ""
            while time.monotonic() < deadline and status == 200:
                async with session.get(f"{base}/readyz") as response:
                    status, body = response.status, await response.text()
                await asyncio.sleep(0.05)
            assert (status, body) == (503, "not ready: NATS not connected\n")
            bus.start()
    finally:
        await agent.shutdown()


async def test_duplicate_start_returns_the_same_workload(
    agent: Agent, nc: nats.aio.client.Client, hello_wasm: Path
) -> None:
    image = f"file://{hello_wasm}"
    first, second = await asyncio.gather(start(nc, agent, "dup", image), start(nc, agent, "dup", image))
    third = await start(nc, agent, "dup", image)
    for status in (first, second, third):
        assert status["workloadState"] == "WORKLOAD_STATE_RUNNING"
        assert status["workloadId"] == "dup"
    hb = await ask(nc, agent, subjects.HEARTBEAT, b"{}")
    assert hb["workloadCount"] == "1" and hb["componentCount"] == "1"
    assert agent.workloads is not None and len(agent.workloads.records()) == 1
    assert (await http_get(agent.http_port, "hello.test"))[0] == 200


async def test_snake_case_numeric_enum_start_is_understood(
    agent: Agent, nc: nats.aio.client.Client, hello_wasm: Path
) -> None:
    raw = json.dumps({
        "workload_id": "snake",
        "workload": {"namespace": "default", "name": "snake", "wit_world": {
            "components": [{"name": "c", "image": f"file://{hello_wasm}", "image_pull_policy": 2,
                            "pool_size": "1"}],
            "host_interfaces": [{"namespace": "wasi", "package": "http", "interfaces": ["incoming-handler"],
                                 "config": {"host": "snake.test"}}],
        }},
    }).encode()
    body = await ask(nc, agent, subjects.WORKLOAD_START, raw)
    assert body == {"workloadStatus": {"workloadId": "snake", "workloadState": "WORKLOAD_STATE_RUNNING",
                                       "message": "1 component: c (http, running); serving snake.test",
                                       "components": [{"name": "c", "role": "http", "state": "running",
                                                       "message": ""}]}}
    assert (await http_get(agent.http_port, "snake.test"))[0] == 200


async def test_bad_requests_get_error_replies(agent: Agent, nc: nats.aio.client.Client) -> None:
    for command in (subjects.WORKLOAD_START, subjects.WORKLOAD_STATUS, subjects.WORKLOAD_STOP):
        reply = await nc.request(subjects.host_command(agent.host_id, command), b"{not json", timeout=5)
        assert reply.headers is not None and reply.headers["Nats-Service-Error-Code"] == "400"
        status = json.loads(reply.data)["workloadStatus"]
        assert status["workloadState"] == "WORKLOAD_STATE_ERROR"
        assert status["message"].startswith("invalid request:") and "\n" not in status["message"]
    missing = await ask(nc, agent, subjects.WORKLOAD_START, b'{"workload": {}}')
    assert "workloadId is required" in missing["workloadStatus"]["message"]
    typed = await ask(nc, agent, subjects.WORKLOAD_START, b'{"workloadId": "x", "workload": {"volumes": 3}}')
    assert typed["workloadStatus"]["workloadId"] == "x"
    assert typed["workloadStatus"]["workloadState"] == "WORKLOAD_STATE_ERROR"

    unknown = await nc.request(f"runtime.host.{agent.host_id}.workload.explode", b"{}", timeout=5)
    assert unknown.headers is not None and unknown.headers["Nats-Service-Error-Code"] == "404"
    assert "unknown command" in json.loads(unknown.data)["error"]["message"]
    bad_hb = await nc.request(subjects.host_heartbeat(agent.host_id), b"[]", timeout=5)
    assert json.loads(bad_hb.data)["error"]["code"] == 400


async def test_bad_images_answer_error_with_a_reason_and_a_later_start_retries(
    agent: Agent, nc: nats.aio.client.Client, tmp_path: Path, hello_wasm: Path
) -> None:
    missing = await start(nc, agent, "m", f"file://{tmp_path}/absent.wasm")
    assert missing["workloadState"] == "WORKLOAD_STATE_ERROR"
    assert "no such file" in missing["message"]
    junk = tmp_path / "junk.wasm"
    junk.write_bytes(b"not wasm at all")
    bad = await start(nc, agent, "j", f"file://{junk}")
    assert bad["workloadState"] == "WORKLOAD_STATE_ERROR" and "\n" not in bad["message"]
    body = await ask(nc, agent, subjects.WORKLOAD_STATUS, b'{"workloadId": "j"}')
    assert body["workloadStatus"]["workloadState"] == "WORKLOAD_STATE_ERROR"
    # A start after ERROR tries again: the cause may be gone.
    junk.write_bytes(hello_wasm.read_bytes())
    retried, duplicate = await asyncio.gather(
        start(nc, agent, "j", f"file://{junk}"), start(nc, agent, "j", f"file://{junk}")
    )
    assert retried["workloadState"] == duplicate["workloadState"] == "WORKLOAD_STATE_RUNNING", retried
    assert agent.workloads is not None
    assert [r.workload_id for r in agent.workloads.records() if r.workload_id == "j"] == ["j"]


@pytest.fixture
async def slow_http(hello_wasm: Path) -> AsyncIterator[str]:
    async with serving_slowly(hello_wasm.read_bytes(), 2.0) as url:
        yield url


async def test_a_slow_fetch_delays_neither_heartbeats_nor_status(
    agent: Agent, nc: nats.aio.client.Client, slow_http: str
) -> None:
    starting = asyncio.create_task(start(nc, agent, "slow", slow_http))
    await asyncio.sleep(0.3)
    t0 = time.monotonic()
    hb = await ask(nc, agent, subjects.HEARTBEAT, b"", timeout=1)
    status = await ask(nc, agent, subjects.WORKLOAD_STATUS, b'{"workloadId": "slow"}', timeout=1)
    assert time.monotonic() - t0 < 0.5
    assert hb["id"] == agent.host_id
    assert status["workloadStatus"]["workloadState"] == "WORKLOAD_STATE_STARTING"
    assert (await starting)["workloadState"] == "WORKLOAD_STATE_RUNNING"


async def test_stop_during_a_slow_start_cancels_it(
    agent: Agent, nc: nats.aio.client.Client, slow_http: str
) -> None:
    starting = asyncio.create_task(start(nc, agent, "cancelled", slow_http))
    await asyncio.sleep(0.3)
    stopped = await ask(nc, agent, subjects.WORKLOAD_STOP, b'{"workloadId": "cancelled"}', timeout=5)
    assert stopped["workloadStatus"]["workloadState"] == "WORKLOAD_STATE_STOPPING"
    result = await starting
    assert result["workloadState"] == "WORKLOAD_STATE_ERROR"
    assert result["message"] == "stopped while starting"
    body = await ask(nc, agent, subjects.WORKLOAD_STATUS, b'{"workloadId": "cancelled"}')
    assert body["workloadStatus"]["workloadState"] == "WORKLOAD_STATE_NOT_FOUND"


async def test_heartbeats_carry_every_field(agent: Agent, nc: nats.aio.client.Client) -> None:
    sub = await nc.subscribe(subjects.operator_heartbeat(agent.host_id))
    published = json.loads((await sub.next_msg(timeout=3)).data)
    requested = await ask(nc, agent, subjects.HEARTBEAT, b"{}")
    for hb in (published, requested):
        assert hb["id"] == agent.host_id
        assert hb["hostname"] == "127.0.0.1"
        assert hb["friendlyName"].count("-") == 2
        assert hb["version"]
        assert hb["labels"] == {"hostgroup": "test", "zone": "a"}
        assert hb["startedAt"].endswith("Z")
        assert hb["osName"] == "linux" and hb["osArch"] and hb["osKernel"]
        assert isinstance(hb["systemCpuUsage"], float | int) and 0 <= hb["systemCpuUsage"] <= 100
        assert int(hb["systemMemoryTotal"]) > int(hb["systemMemoryFree"]) > 0
        assert hb["workloadCount"] == "0" and hb["componentCount"] == "0"
        assert hb["httpPort"] == agent.http_port > 0
        assert hb["environment"] == "dev"
        exported = {(w["namespace"], w["package"], i) for w in hb["exports"] for i in w["interfaces"]}
        assert ("wasi", "http", "incoming-handler") in exported
        imported = {(w["namespace"], w["package"]) for w in hb["imports"]}
        assert ("wasi", "http") in imported or ("wasi", "io") in imported
    assert messages.decode(messages.HostHeartbeat, json.dumps(published)).id == agent.host_id


async def test_ephemeral_volumes_are_per_workload_and_removed_on_stop(
    agent: Agent, nc: nats.aio.client.Client, hello_wasm: Path
) -> None:
    request = messages.decode(messages.WorkloadStartRequest, start_request("vol", f"file://{hello_wasm}"))
    request.workload.volumes = [messages.Volume(name="scratch", empty_dir=messages.EmptyDirVolume())]
    request.workload.wit_world.components[0].local_resources.volume_mounts = [
        messages.VolumeMount(name="scratch", mount_path="/data")
    ]
    body = await ask(nc, agent, subjects.WORKLOAD_START, messages.encode(request))
    assert body["workloadStatus"]["workloadState"] == "WORKLOAD_STATE_RUNNING", body
    scratch = agent.settings.lifecycle.data_dir / agent.host_id / "workloads" / "vol" / "volumes" / "scratch"
    assert scratch.is_dir()
    await ask(nc, agent, subjects.WORKLOAD_STOP, b'{"workloadId": "vol"}')
    assert not scratch.exists()

    request.workload_id = "vol2"
    request.workload.wit_world.components[0].local_resources.volume_mounts = [
        messages.VolumeMount(name="nope", mount_path="/data")
    ]
    body = await ask(nc, agent, subjects.WORKLOAD_START, messages.encode(request))
    assert body["workloadStatus"]["workloadState"] == "WORKLOAD_STATE_ERROR"
    assert "names no workload volume" in body["workloadStatus"]["message"]


async def test_reconnects_after_nats_restart_and_keeps_serving(
    tmp_path: Path, bus: NatsServer, hello_wasm: Path
) -> None:
    # A 60 s interval: a heartbeat soon after the restart can only be the reconnect's own.
    settings = host_settings(tmp_path, bus.url)
    settings = dataclasses.replace(settings, bus=dataclasses.replace(settings.bus, heartbeat_interval_s=60))
    agent = Agent(settings)
    await agent.start()
    subject = subjects.operator_heartbeat(agent.host_id)
    try:
        client = await nats.connect(bus.url)
        try:
            # A JetStream stream (kept in the server's data dir) records heartbeats across the restart,
            # whoever reconnects first.
            await client.jetstream().add_stream(name="HEARTBEATS", subjects=[subject])
            status = await start(client, agent, "survivor", f"file://{hello_wasm}")
            assert status["workloadState"] == "WORKLOAD_STATE_RUNNING"
        finally:
            await client.close()

        bus.kill()
        for _ in range(5):  # the workload keeps serving while the bus is down
            assert (await http_get(agent.http_port, "hello.test"))[0] == 200
            await asyncio.sleep(0.1)
        bus.start()

        client = await nats.connect(bus.url)
        try:
            js = client.jetstream()
            deadline = time.monotonic() + 5
            while (await js.stream_info("HEARTBEATS")).state.messages < 1 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            beats = await js.pull_subscribe(subject, durable="check")
            last = (await beats.fetch(1, timeout=2))[-1]
            hb = json.loads(last.data)
            assert hb["workloadCount"] == "1"  # the beat published on reconnect, not one from before
            body = await ask(client, agent, subjects.WORKLOAD_STATUS, b'{"workloadId": "survivor"}', timeout=5)
            assert body["workloadStatus"]["workloadState"] == "WORKLOAD_STATE_RUNNING"
        finally:
            await client.close()
        assert (await http_get(agent.http_port, "hello.test"))[0] == 200
    finally:
        await agent.shutdown()


async def test_oci_pull_with_credentials(
    agent: Agent, nc: nats.aio.client.Client, hello_wasm: Path, tmp_path: Path
) -> None:
    with running_registry(tmp_path / "registry", users={"bob": "pw"}) as registry:
        push_wasm(registry, "apps/hello", "1.0", hello_wasm.read_bytes(), auth=("bob", "pw"))
        image = f"{registry.host}/apps/hello:1.0"
        denied = await start(nc, agent, "oci-anon", image, host="oci.test")
        assert denied["workloadState"] == "WORKLOAD_STATE_ERROR"
        assert "credentials" in denied["message"]
        secret = messages.ImagePullSecret(username="bob", password="pw")
        ok = await start(nc, agent, "oci", image, host="oci.test", image_pull_secret=secret)
        assert ok["workloadState"] == "WORKLOAD_STATE_RUNNING", ok
    assert await http_get(agent.http_port, "oci.test") == (200, "hello from wat\n")


async def test_error_status_says_whether_a_retry_can_help(
    agent: Agent, nc: nats.aio.client.Client, hello_wasm: Path, tmp_path: Path
) -> None:
    with running_registry(tmp_path / "registry") as registry:
        push_wasm(registry, "apps/hello", "1.0", hello_wasm.read_bytes())
        present = await start(nc, agent, "r-ok", f"{registry.host}/apps/hello:1.0", host="r-ok.test")
        assert present["workloadState"] == "WORKLOAD_STATE_RUNNING" and present.get("retryable", False) is False
        absent = await start(nc, agent, "r-404", f"{registry.host}/apps/hello:2.0", host="r-404.test")
        assert absent["workloadState"] == "WORKLOAD_STATE_ERROR", absent
        assert absent.get("retryable", False) is False, absent
        down_host = registry.host
    # The registry process is gone: nothing listens on its port any more (a reference never
    # fetched, so the host's artifact cache cannot answer for the registry).
    down = await start(nc, agent, "r-down", f"{down_host}/apps/other:1.0", host="r-down.test")
    assert down["workloadState"] == "WORKLOAD_STATE_ERROR", down
    assert down["retryable"] is True, down
    # The status query carries the same verdict as the start reply.
    body = await ask(nc, agent, subjects.WORKLOAD_STATUS, b'{"workloadId": "r-down"}')
    assert body["workloadStatus"]["retryable"] is True
    junk = tmp_path / "junk.wasm"
    junk.write_bytes(b"not wasm at all")
    not_component = await start(nc, agent, "r-junk", f"file://{junk}", host="r-junk.test")
    assert not_component["workloadState"] == "WORKLOAD_STATE_ERROR"
    assert not_component.get("retryable", False) is False


async def test_a_registry_answering_503_is_retryable(agent: Agent, nc: nats.aio.client.Client) -> None:
    async def unavailable(_: aiohttp.web.Request) -> aiohttp.web.Response:
        return aiohttp.web.Response(status=503, text="maintenance")

    app = aiohttp.web.Application()
    app.router.add_route("*", "/{tail:.*}", unavailable)
    runner = aiohttp.web.AppRunner(app)
    await runner.setup()
    site = aiohttp.web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        status = await start(nc, agent, "r-503", f"127.0.0.1:{port}/apps/hello:1.0", host="r-503.test")
    finally:
        await runner.cleanup()
    assert status["workloadState"] == "WORKLOAD_STATE_ERROR", status
    assert "503" in status["message"] and status["retryable"] is True, status
