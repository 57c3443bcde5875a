"""The event-driven example (examples/messaging) works: built by its own build.sh, run by a real host.

The two components are built with the example's build.sh (componentize-py; cached under .cache by a
hash of the example's sources) and started on one host agent with a real nats-server, with the
hostInterfaces of examples/messaging/deployment.yaml.

Checks:
- the manifest validates offline and its images resolve next to it;
- HTTP -> publisher -> consumer.request on demo.transform -> transformer's handler -> reply: the
  answer is the transformed text (request/reply through consumer.request, the host never replying);
- /publish: a plain publish reaches the handler, which publishes to demo.transform.done;
- consumer.request to a subject whose subscriber never answers errs "request timed out after 300 ms",
  and to one nobody subscribes errs "no responders".
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import nats
import pytest
from example_builds import built_example
from plugin_agents import plugin_host_settings, running_agent

from wasmfleet.bus import messages, subjects
from wasmfleet.cli import resources_api
from wasmfleet.host.agent import Agent
from wasmfleet.testing.nats import NatsServer, nats_server

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "messaging"

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def built() -> Path:
    return built_example(EXAMPLE, "transformer.wasm")


@pytest.fixture
def bus(tmp_path: Path) -> Iterator[NatsServer]:
    with nats_server(tmp_path / "nats") as server:
        yield server


@pytest.fixture
async def agent(tmp_path: Path, bus: NatsServer) -> AsyncIterator[Agent]:
    async with running_agent(plugin_host_settings(tmp_path, bus.url)) as host:
        yield host


@pytest.fixture
async def nc(bus: NatsServer) -> AsyncIterator[Any]:
    client = await nats.connect(bus.url)
    try:
        yield client
    finally:
        await client.close()


def manifests() -> dict[str, dict[str, Any]]:
    return {obj["metadata"]["name"]: obj for _, obj in resources_api.load_manifests([str(EXAMPLE / "deployment.yaml")])}


def test_manifest_validates_and_images_resolve() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", "from wasmfleet.cli.main import main; main()", "validate", "-f",
         str(EXAMPLE / "deployment.yaml")], capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stderr
    images = {name: obj["spec"]["template"]["spec"]["components"][0]["image"] for name, obj in manifests().items()}
    assert images == {"transformer": f"file://{EXAMPLE / 'transformer.wasm'}",
                      "publisher": f"file://{EXAMPLE / 'publisher.wasm'}"}


async def start(nc: Any, agent: Agent, name: str, image: Path) -> dict:
    spec = manifests()[name]["spec"]["template"]["spec"]
    entries = [messages.WitInterface(namespace=e["namespace"], package=e["package"], interfaces=e["interfaces"],
                                     version=e.get("version", ""), config=e.get("config", {}))
               for e in spec["hostInterfaces"]]
    body = messages.encode(messages.WorkloadStartRequest(
        workload_id=name,
        workload=messages.Workload(namespace="default", name=name, wit_world=messages.WitWorld(
            components=[messages.Component(name=name, image=f"file://{image}")], host_interfaces=entries,
        )),
    ))
    reply = await nc.request(subjects.workload_start(agent.host_id), body, timeout=120)
    status: dict = json.loads(reply.data)["workloadStatus"]
    return status


async def test_http_publisher_and_message_handler(agent: Agent, nc: Any, built: Path) -> None:
    status = await start(nc, agent, "transformer", built / "transformer.wasm")
    assert status["workloadState"] == "WORKLOAD_STATE_RUNNING", status
    status = await start(nc, agent, "publisher", built / "publisher.wasm")
    assert status["workloadState"] == "WORKLOAD_STATE_RUNNING", status
    done: list[bytes] = []

    async def collect(msg: Any) -> None:
        done.append(msg.data)

    await nc.subscribe("demo.transform.done", cb=collect)
    silent = await nc.subscribe("silent")  # receives, never answers
    await nc.flush()
    url = f"http://127.0.0.1:{agent.http_port}"
    headers = {"Host": "messaging.localhost"}
    async with aiohttp.ClientSession(headers=headers) as session:
        async with session.get(url + "/", params={"text": "hello event driven world"}) as response:
            assert response.status == 200, await response.text()
            assert await response.text() == "WORLD DRIVEN EVENT HELLO\n"
        async with session.get(url + "/publish", params={"text": "fire and forget"}) as response:
            assert response.status == 202, await response.text()
        async with session.get(url + "/ask", params={"subject": "silent", "text": "x", "timeout_ms": "300"}) as r:
            assert r.status == 502
            assert await r.text() == "request timed out after 300 ms\n"
        async with session.get(url + "/ask", params={"subject": "nobody.here", "text": "x"}) as r:
            assert r.status == 502
            assert await r.text() == "no responders on nobody.here\n"
    assert (await silent.next_msg(timeout=1)).data == b"x"
    for _ in range(50):
        if done:
            break
        await asyncio.sleep(0.1)
    assert done == [b"FORGET AND FIRE"]
