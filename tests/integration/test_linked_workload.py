"""A workload of two linked components built with two toolchains, run by the host agent on a real
nats-server and served over real HTTP: an HTTP front in JavaScript (componentize-js,
tests/components/text-front-js) calling a Python library (componentize-py, text-lib-py) through
the custom interface wasmfleet:demo/text@0.1.0.

Checks, in one host process and with two worker processes:
- The start answers RUNNING; the status lists each component in manifest order with its role and
  state (the library first: HTTP goes to the first component exporting incoming-handler).
- Calls cross components within a request: a string function, a list<u8> -> record function, and
  100 calls in one request.
- A host interface granted to the workload (wasi:config) serves the library too, with the
  library's own config (not the front's).
- A trap in the library fails that request (500) and the next is served.
- Without the library, the start answers ERROR naming the front and the missing interface,
  not retryable.
"""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import nats
import pytest

from wasmfleet.artifacts.fetching import ArtifactSettings
from wasmfleet.bus import messages, subjects
from wasmfleet.host.agent import Agent
from wasmfleet.host.policy import HostPolicy
from wasmfleet.host.settings import BusSettings, HostSettings, Identity, LifecycleSettings, ServingSettings
from wasmfleet.testing.nats import nats_server

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.components.build import build_component, cache_dir

REPO = Path(__file__).resolve().parents[2]
HOST = "linked.test"


@pytest.fixture(scope="module")
def guests() -> tuple[Path, Path]:
    return build_component("text-front-js"), build_component("text-lib-py")


@pytest.fixture(params=[1, 2], ids=["one-process", "two-workers"])
async def agent(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Agent]:
    with nats_server(tmp_path / "nats") as bus:
        settings = HostSettings(
            identity=Identity(labels={"hostgroup": "test"}),
            bus=BusSettings(nats_url=bus.url, heartbeat_interval_s=0.5, reconnect_wait_s=0.1),
            serving=ServingSettings(http_host="127.0.0.1", http_port=0, workers=request.param),
            lifecycle=LifecycleSettings(drain_timeout_s=3, data_dir=tmp_path / "host"),
            artifacts=ArtifactSettings(cache_dir=tmp_path / "artifacts"),
            # Compiled guests survive runs (the two interpreters take ~10-20 s each to compile).
            runtime_cache_dir=REPO / ".cache" / "runtime-test-components",
            policy=HostPolicy.allowing(cache_dir(), tmp_path),
        )
        host = Agent(settings)
        await host.start()
        try:
            yield host
        finally:
            await host.shutdown()


def workload_request(workload_id: str, components: list[messages.Component]) -> bytes:
    return messages.encode(messages.WorkloadStartRequest(
        workload_id=workload_id,
        workload=messages.Workload(namespace="default", name=workload_id, wit_world=messages.WitWorld(
            components=components,
            host_interfaces=[
                messages.WitInterface(namespace="wasi", package="http", interfaces=["incoming-handler"],
                                      config={"host": HOST}),
                messages.WitInterface(namespace="wasi", package="config", interfaces=["store"]),
            ],
        )),
    ))


async def start(agent: Agent, workload_id: str, components: list[messages.Component]) -> dict:
    nc = await nats.connect(agent.settings.bus.nats_url)
    try:
        reply = await nc.request(subjects.host_command(agent.host_id, subjects.WORKLOAD_START),
                                 workload_request(workload_id, components), timeout=180)
    finally:
        await nc.close()
    status: dict = json.loads(reply.data)["workloadStatus"]
    return status


def library(path: Path) -> messages.Component:
    return messages.Component(name="text", image=f"file://{path}",
                              local_resources=messages.LocalResources(config={"prefix": "lib:"}))


def front(path: Path) -> messages.Component:
    return messages.Component(name="front", image=f"file://{path}",
                              local_resources=messages.LocalResources(config={"prefix": "front:"}))


async def call(agent: Agent, path: str, body: bytes | None = None) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session:
        method = session.post if body is not None else session.get
        async with method(f"http://127.0.0.1:{agent.http_port}{path}", headers={"Host": HOST},
                          data=body) as response:
            return response.status, await response.text()


async def test_a_js_front_calls_a_python_library(agent: Agent, guests: tuple[Path, Path]) -> None:
    front_wasm, lib_wasm = guests
    status = await start(agent, "pair", [library(lib_wasm), front(front_wasm)])
    assert status["workloadState"] == "WORKLOAD_STATE_RUNNING", status
    assert status["components"] == [
        {"name": "text", "role": "library", "state": "linked", "message": ""},
        {"name": "front", "role": "http", "state": "running",
         "message": "imports wasmfleet:demo/text@0.1.0 from text"},
    ]
    assert status["message"] == ("2 components: text (library, linked), front (http, running); "
                                 f"serving {HOST}")
    # The library's own config (wasi:config, granted to the workload), not the front's.
    assert await call(agent, "/transform?s=hello%20world") == (200, "lib:DLROW OLLEH")
    status_code, text = await call(agent, "/summarize", b"linked components in one request")
    assert status_code == 200
    data = b"linked components in one request"
    assert json.loads(text) == {"length": len(data), "checksum": sum(data), "words": 5}
    # 100 rotations of 8 letters: 100 calls across, or one call doing them inside the library.
    assert await call(agent, "/cross?n=100") == await call(agent, "/inside?n=100") == (200, "efghabcd")
    code, text = await call(agent, "/transform?s=trap")
    assert code == 500, text
    assert await call(agent, "/transform?s=ok") == (200, "lib:KO")


async def test_a_missing_library_fails_the_start(agent: Agent, guests: tuple[Path, Path]) -> None:
    front_wasm, _ = guests
    status = await start(agent, "alone", [front(front_wasm)])
    assert status["workloadState"] == "WORKLOAD_STATE_ERROR", status
    assert status["message"] == ("component front: imports wasmfleet:demo/text@0.1.0, which no component "
                                 "of this workload exports and this host does not implement")
    assert "retryable" not in status
    assert "components" not in status
