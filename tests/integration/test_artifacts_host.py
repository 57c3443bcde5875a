"""Hosts run components from the JetStream Object Store and from images pushed by `wasmfleet push`
or by oras: the real host agent on a real nats-server, a real docker-registry, real HTTP.

Checks: a component published to the Object Store (publishing.publish) is started by a host from its
`nats://wasmfleet-artifacts/sha256:<hex>` URL and serves HTTP while the registry is stopped (so
failover and scale-out do not depend on the registry), and the host's metrics count the download;
a nats:// URL whose object is gone is a one-line ERROR naming it; a component pushed with
`wasmfleet push` (pulled by the host straight from the registry) serves HTTP; one pushed by oras
with the older application/vnd.module.wasm.content.layer.v1+wasm layer type serves HTTP too.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import nats
import oras.client
import pytest

from wasmfleet.artifacts import publishing
from wasmfleet.artifacts.fetching import ArtifactSettings
from wasmfleet.bus import messages, subjects
from wasmfleet.host.agent import Agent
from wasmfleet.host.settings import BusSettings, HostSettings, Identity, LifecycleSettings, ServingSettings
from wasmfleet.testing.nats import NatsServer, nats_server
from wasmfleet.testing.oci_registry_server import Registry, push_wasm, running_registry

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.components.build import build_component

RUNNING = "WORKLOAD_STATE_RUNNING"


@pytest.fixture(scope="module")
def hello_wasm() -> Path:
    return build_component("hello-wat")


@pytest.fixture
def bus(tmp_path: Path) -> Iterator[NatsServer]:
    with nats_server(tmp_path / "nats") as server:
        yield server


@pytest.fixture
async def agent(tmp_path: Path, bus: NatsServer) -> AsyncIterator[Agent]:
    host = Agent(HostSettings(
        identity=Identity(labels={"hostgroup": "test"}, environment="dev"),
        bus=BusSettings(nats_url=bus.url, heartbeat_interval_s=0.5, reconnect_wait_s=0.1),
        serving=ServingSettings(http_host="127.0.0.1", http_port=0, workers=1),
        lifecycle=LifecycleSettings(drain_timeout_s=3, data_dir=tmp_path / "host"),
        artifacts=ArtifactSettings(cache_dir=tmp_path / "artifacts"),
        runtime_cache_dir=tmp_path / "compiled",
    ))
    await host.start()
    try:
        yield host
    finally:
        await host.shutdown()


@pytest.fixture
async def nc(bus: NatsServer) -> AsyncIterator[nats.aio.client.Client]:
    client = await nats.connect(bus.url)
    try:
        yield client
    finally:
        await client.close()


async def start(nc: nats.aio.client.Client, agent: Agent, workload_id: str, image: str, host: str,
                **component: object) -> dict:
    request = messages.WorkloadStartRequest(
        workload_id=workload_id,
        workload=messages.Workload(
            namespace="default", name=workload_id,
            wit_world=messages.WitWorld(
                components=[messages.Component(name="hello", image=image, **component)],  # type: ignore[arg-type]
                host_interfaces=[messages.WitInterface(
                    namespace="wasi", package="http", interfaces=["incoming-handler"], config={"host": host},
                )],
            ),
        ),
    )
    reply = await nc.request(subjects.host_command(agent.host_id, subjects.WORKLOAD_START),
                             messages.encode(request), timeout=60)
    status: dict = json.loads(reply.data)["workloadStatus"]
    return status


async def http_get(port: int, host: str) -> tuple[int, str]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/", headers={"Host": host}) as response,
    ):
        return response.status, await response.text()


def registry_is_down(registry: Registry) -> bool:
    try:
        urllib.request.urlopen(f"{registry.url}/v2/", timeout=2)
    except urllib.error.HTTPError:
        return False
    except OSError:
        return True
    return False


async def test_a_host_runs_a_published_component_with_the_registry_stopped(
    tmp_path: Path, agent: Agent, nc: nats.aio.client.Client, hello_wasm: Path
) -> None:
    with running_registry(tmp_path / "registry") as registry:
        push_wasm(registry, "hello", "1", hello_wasm.read_bytes())
        published = await publishing.publish(f"{registry.host}/hello:1", None, nc)
    assert registry_is_down(registry)
    assert published.url.startswith("nats://wasmfleet-artifacts/sha256:")
    status = await start(nc, agent, "from-store", published.url, "store.test")
    assert status["workloadState"] == RUNNING, status
    assert await http_get(agent.http_port, "store.test") == (200, "hello from wat\n")
    assert agent.metrics.download_bytes._value.get() == published.size

    await publishing.delete(published.digest, nc)
    missing = f"nats://wasmfleet-artifacts/sha256:{'1' * 64}"
    status = await start(nc, agent, "gone", missing, "gone.test")
    assert status["workloadState"] == "WORKLOAD_STATE_ERROR"
    assert missing in status["message"] and "not in the object store" in status["message"], status
    assert "\n" not in status["message"]


async def test_a_component_pushed_by_the_cli_runs(
    tmp_path: Path, agent: Agent, nc: nats.aio.client.Client, hello_wasm: Path
) -> None:
    with running_registry(tmp_path / "registry") as registry:
        image = f"{registry.host}/cli/hello:1"
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "wasmfleet", "push", image, str(hello_wasm), stderr=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.DEVNULL, env={**os.environ, "HOME": str(tmp_path)},
        )
        _, err = await proc.communicate()
        assert proc.returncode == 0, err
        status = await start(nc, agent, "pushed", image, "pushed.test")
        assert status["workloadState"] == RUNNING, status
        assert await http_get(agent.http_port, "pushed.test") == (200, "hello from wat\n")


async def test_a_component_pushed_by_oras_with_the_legacy_layer_type_runs(
    tmp_path: Path, agent: Agent, nc: nats.aio.client.Client, hello_wasm: Path
) -> None:
    with running_registry(tmp_path / "registry") as registry:
        image = f"{registry.host}/legacy/hello:1"
        (tmp_path / "hello.wasm").write_bytes(hello_wasm.read_bytes())
        client = oras.client.OrasClient(hostname=registry.host, insecure=True)
        cwd = os.getcwd()
        os.chdir(tmp_path)  # oras records the given path as the layer title
        try:
            await asyncio.to_thread(
                client.push, target=image, files=["hello.wasm:application/vnd.module.wasm.content.layer.v1+wasm"]
            )
        finally:
            os.chdir(cwd)
        status = await start(nc, agent, "legacy", image, "legacy.test")
        assert status["workloadState"] == RUNNING, status
        assert await http_get(agent.http_port, "legacy.test") == (200, "hello from wat\n")
