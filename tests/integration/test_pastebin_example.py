"""The paste bin example (examples/pastebin) works: built by its own build.sh, run by a real host.

The component is built with the example's build.sh (componentize-py; cached under .cache by a hash
of the example's sources) and started on one host agent (two worker processes) with a real
nats-server, with the hostInterfaces of examples/pastebin/deployment.yaml: both unnamed, so the
host's defaults serve them, JetStream KV and the JetStream Object Store.

Checks:
- the manifest validates offline and its image resolves next to it;
- POST / makes pastes /1 and /2 (201, Location); GET /1 answers the paste, and x-views counts its
  reads; GET / counts the pastes; an unknown paste is 404, a DELETE 405;
- a 3 MB paste round-trips byte for byte;
- what the plugins wrote is in NATS (read with nats-py): the object `1` in the Object Store bucket
  `pastes`, the counter `views.1` in the KV bucket `pastebin` (a big-endian u64).
"""

from __future__ import annotations

import io
import json
import os
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
EXAMPLE = REPO / "examples" / "pastebin"

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def built() -> Path:
    return built_example(EXAMPLE, "pastebin.wasm") / "pastebin.wasm"


@pytest.fixture
def bus(tmp_path: Path) -> Iterator[NatsServer]:
    with nats_server(tmp_path / "nats") as server:
        yield server


@pytest.fixture
async def agent(tmp_path: Path, bus: NatsServer) -> AsyncIterator[Agent]:
    async with running_agent(plugin_host_settings(tmp_path, bus.url, workers=2)) as host:
        yield host


@pytest.fixture
async def nc(bus: NatsServer) -> AsyncIterator[Any]:
    client = await nats.connect(bus.url)
    try:
        yield client
    finally:
        await client.close()


def template() -> dict[str, Any]:
    (_, deployment), = resources_api.load_manifests([str(EXAMPLE / "deployment.yaml")])
    spec: dict[str, Any] = deployment["spec"]["template"]["spec"]
    return spec


def test_manifest_validates_and_image_resolves() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", "from wasmfleet.cli.main import main; main()", "validate", "-f",
         str(EXAMPLE / "deployment.yaml")], capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert template()["components"][0]["image"] == f"file://{EXAMPLE / 'pastebin.wasm'}"


async def test_pastes_on_nats(agent: Agent, nc: Any, built: Path) -> None:
    spec = template()
    entries = [messages.WitInterface(namespace=e["namespace"], package=e["package"], interfaces=e["interfaces"],
                                     version=e.get("version", ""), config=e.get("config", {}))
               for e in spec["hostInterfaces"]]
    body = messages.encode(messages.WorkloadStartRequest(
        workload_id="pastebin",
        workload=messages.Workload(namespace="default", name="pastebin", wit_world=messages.WitWorld(
            components=[messages.Component(name="pastebin", image=f"file://{built}")], host_interfaces=entries,
        )),
    ))
    reply = await nc.request(subjects.workload_start(agent.host_id), body, timeout=120)
    status = json.loads(reply.data)["workloadStatus"]
    assert status["workloadState"] == "WORKLOAD_STATE_RUNNING", status

    url = f"http://127.0.0.1:{agent.http_port}"
    big = os.urandom(3 << 20)
    async with aiohttp.ClientSession(headers={"Host": "pastebin.localhost"}) as session:
        async with session.post(url + "/", data=b"hello, paste") as r:
            assert (r.status, await r.text(), r.headers["location"]) == (201, "/1\n", "/1")
        for views in (1, 2):
            async with session.get(url + "/1") as r:
                assert (r.status, await r.read(), r.headers["x-views"]) == (200, b"hello, paste", str(views))
        async with session.post(url + "/", data=io.BytesIO(big)) as r:
            assert (r.status, await r.text()) == (201, "/2\n")
        async with session.get(url + "/2") as r:
            assert r.status == 200 and await r.read() == big
        async with session.get(url + "/") as r:
            assert await r.text() == "pastes: 2\n"
        async with session.get(url + "/7") as r:
            assert (r.status, await r.text()) == (404, "no paste /7\n")
        async with session.delete(url + "/1") as r:
            assert r.status == 405

    js = nc.jetstream()
    stored = await (await js.object_store("pastes")).get("1")
    assert stored.data == b"hello, paste"
    views = await (await js.key_value("pastebin")).get("views.1")
    assert int.from_bytes(views.value or b"", "big") == 2
