"""wasi:blobstore on a real `wasmfleet host` (real nats-server with JetStream, workloads started over
the bus as the operator does), with the blobstore-py guest (tests/components, componentize-py).

Checks: the host advertises wasi:blobstore@0.2.0-draft in its heartbeat; the unnamed entry uses
NATS on the host's own data connection (what the guest writes is an object of the JetStream
Object Store bucket named like the container, read back with nats-py directly, and an object put
with nats-py is read by the guest, range included); a start whose wasi:blobstore entry has a bad
backend config answers ERROR, not retryable, naming the entry and the key.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nats
import pytest

from wasmfleet.bus import messages, subjects
from wasmfleet.testing.nats import NatsServer, nats_server

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import plugin_agents
from tests.components.build import build_component

REPO = Path(__file__).resolve().parents[2]
HOST_ID = "blobstore-test-host"

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def blobstore_wasm() -> Path:
    return build_component("blobstore-py")


@pytest.fixture
def bus(tmp_path: Path) -> Iterator[NatsServer]:
    with nats_server(tmp_path / "nats") as server:
        yield server


@pytest.fixture
def host_port(bus: NatsServer, tmp_path: Path) -> Iterator[int]:
    with plugin_agents.host_process(tmp_path, bus.url, HOST_ID, os.environ) as port:
        yield port


@pytest.fixture
async def nc(bus: NatsServer) -> AsyncIterator[nats.aio.client.Client]:
    client = await nats.connect(bus.url)
    try:
        yield client
    finally:
        await client.close()


async def ask(nc: nats.aio.client.Client, command: str, payload: bytes, timeout: float = 120) -> dict:
    deadline = time.monotonic() + 30
    while True:
        try:
            reply = await nc.request(subjects.host_command(HOST_ID, command), payload, timeout=timeout)
            return json.loads(reply.data)
        except nats.errors.NoRespondersError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


def blobstore_entry(config: dict[str, str], name: str = "") -> messages.WitInterface:
    return messages.WitInterface(namespace="wasi", package="blobstore", version="0.2.0-draft",
                                 interfaces=["blobstore", "container", "types"], config=config, name=name)


async def start(nc: nats.aio.client.Client, workload_id: str, image: str, entry: messages.WitInterface) -> dict:
    http = messages.WitInterface(namespace="wasi", package="http", interfaces=["incoming-handler"],
                                 config={"host": f"{workload_id}.test"})
    request = messages.encode(messages.WorkloadStartRequest(
        workload_id=workload_id,
        workload=messages.Workload(namespace="default", name=workload_id, wit_world=messages.WitWorld(
            components=[messages.Component(name="blobs", image=image)], host_interfaces=[http, entry],
        )),
    ))
    body = await ask(nc, subjects.WORKLOAD_START, request)
    status: dict = body["workloadStatus"]
    return status


def call(port: int, host: str, path: str, data: bytes | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, headers={"Host": host})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


async def test_unnamed_entry_uses_the_hosts_nats_and_bad_config_fails_the_start(
    host_port: int, nc: nats.aio.client.Client, blobstore_wasm: Path
) -> None:
    heartbeat = await ask(nc, subjects.HEARTBEAT, b"")
    advertised = {(i["namespace"], i["package"], i.get("version", "")): sorted(i.get("interfaces", []))
                  for i in heartbeat["imports"]}
    assert advertised[("wasi", "blobstore", "0.2.0-draft")] == ["blobstore", "container", "types"]
    image = f"file://{blobstore_wasm}"

    bad = await start(nc, "b-bad", image, blobstore_entry({"backend": "filesystem"}, name="media"))
    assert bad["workloadState"] == "WORKLOAD_STATE_ERROR", bad
    assert bad.get("retryable", False) is False
    assert "hostInterfaces entry wasi:blobstore (name media): config.root: required" in bad["message"]

    running = await start(nc, "b1", image, blobstore_entry({}))
    assert running["workloadState"] == "WORKLOAD_STATE_RUNNING", running
    host = "b1.test"
    assert (await asyncio.to_thread(call, host_port, host, "/create?c=fleetbox"))[0] == 200
    payload = bytes(range(256)) * 2000
    status, body = await asyncio.to_thread(call, host_port, host, "/write?c=fleetbox&o=data", payload)
    assert status == 200, body

    store = await nc.jetstream().object_store("fleetbox")
    got = await store.get("data")
    assert got.data == payload
    await store.put("from-nats", b"put by nats-py")
    status, body = await asyncio.to_thread(call, host_port, host, "/read?c=fleetbox&o=from-nats&start=4&end=5")
    assert (status, body) == (200, b"by")
    status, body = await asyncio.to_thread(call, host_port, host, "/list?c=fleetbox&page=10")
    assert json.loads(body)["pages"] == [["data", "from-nats"]]
