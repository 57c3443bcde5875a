"""wasi:keyvalue/{store,atomics,batch}@0.2.0-draft, in memory and on NATS JetStream KV, from a real guest.

The guest (tests/components/keyvalue-py, componentize-py) calls every function; the host agent runs
on a real nats-server with JetStream, which the test also reads directly with nats-py.

Checks, in memory (a named entry `mem`, backend in-memory): set/get/exists/delete, get of a missing
key is Ok(none), list-keys pages of 100 sorted keys with the offset as cursor, increment from 0 and
of a non-8-byte value (counts as 0), get-many/set-many/delete-many, buckets private to the workload.
On NATS (the unnamed entry on a host with NATS): open creates the bucket named by the identifier,
values are what JetStream KV holds, increment stores a big-endian u64 and concurrent increments from
two worker processes add up exactly, list-keys pages of 1000, an invalid key is error::other naming the key. A named
NATS entry whose bucket does not exist gives error::no-such-store, an identifier no entry covers
error::access-denied, and an unknown backend fails the start naming the entry and the key.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import nats
import nats.errors
import pytest

from wasmfleet.bus import messages, subjects
from wasmfleet.host.agent import Agent
from wasmfleet.testing.nats import NatsServer, nats_server

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from plugin_agents import plugin_host_settings, running_agent
from tests.components.build import build_component

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def guest() -> Path:
    return build_component("keyvalue-py")


@pytest.fixture
def bus(tmp_path: Path) -> Iterator[NatsServer]:
    with nats_server(tmp_path / "nats") as server:
        yield server


@pytest.fixture
async def agent(tmp_path: Path, bus: NatsServer) -> AsyncIterator[Agent]:
    # Two worker processes: NATS increments race across processes (in-memory tests use a
    # single-process agent, since in-memory buckets live in each process).
    async with running_agent(plugin_host_settings(tmp_path, bus.url, workers=2)) as host:
        yield host


@pytest.fixture
async def one_process_agent(tmp_path: Path, bus: NatsServer) -> AsyncIterator[Agent]:
    async with running_agent(plugin_host_settings(tmp_path, bus.url, suffix="1")) as host:
        yield host


@pytest.fixture
async def nc(bus: NatsServer) -> AsyncIterator[Any]:
    client = await nats.connect(bus.url)
    try:
        yield client
    finally:
        await client.close()


def keyvalue(config: dict[str, str] | None = None, name: str = "") -> messages.WitInterface:
    return messages.WitInterface(namespace="wasi", package="keyvalue", interfaces=["store", "atomics", "batch"],
                                 version="0.2.0-draft", name=name, config=config or {})


async def start(nc: Any, agent: Agent, workload_id: str, image: Path, entries: list[messages.WitInterface]) -> dict:
    http = messages.WitInterface(namespace="wasi", package="http", interfaces=["incoming-handler"],
                                 config={"host": f"{workload_id}.test"})
    body = messages.encode(messages.WorkloadStartRequest(
        workload_id=workload_id,
        workload=messages.Workload(namespace="default", name=workload_id, wit_world=messages.WitWorld(
            components=[messages.Component(name="kv", image=f"file://{image}")],
            host_interfaces=[http, *entries],
        )),
    ))
    reply = await nc.request(subjects.workload_start(agent.host_id), body, timeout=120)
    status: dict = json.loads(reply.data)["workloadStatus"]
    return status


class Guest:
    def __init__(self, session: aiohttp.ClientSession, port: int, workload_id: str) -> None:
        self.session, self.port, self.host = session, port, f"{workload_id}.test"

    async def __call__(self, path: str, **query: str | int) -> Any:
        async with self.session.get(f"http://127.0.0.1:{self.port}{path}", params={k: str(v) for k, v in query.items()},
                                    headers={"Host": self.host}) as response:
            assert response.status == 200, await response.text()
            return json.loads(await response.text())


def hexed(text: str) -> str:
    return text.encode().hex()


async def test_in_memory_backend(one_process_agent: Agent, nc: Any, guest: Path) -> None:
    agent = one_process_agent
    status = await start(nc, agent, "mem1", guest, [keyvalue({"backend": "in-memory"}, name="mem")])
    assert status["workloadState"] == "WORKLOAD_STATE_RUNNING", status
    other = await start(nc, agent, "mem2", guest, [keyvalue({"backend": "in-memory"}, name="mem")])
    assert other["workloadState"] == "WORKLOAD_STATE_RUNNING", other
    async with aiohttp.ClientSession() as session:
        kv, kv2 = Guest(session, agent.http_port, "mem1"), Guest(session, agent.http_port, "mem2")
        assert await kv("/get", id="mem", key="a") == {"ok": None}
        assert await kv("/exists", id="mem", key="a") == {"ok": False}
        assert await kv("/set", id="mem", key="a", value="apple") == {"ok": None}
        assert await kv("/get", id="mem", key="a") == {"ok": hexed("apple")}
        assert await kv("/exists", id="mem", key="a") == {"ok": True}
        assert await kv2("/get", id="mem", key="a") == {"ok": None}  # buckets are per workload
        assert await kv("/delete", id="mem", key="a") == {"ok": None}
        assert await kv("/get", id="mem", key="a") == {"ok": None}

        assert await kv("/incr", id="mem", key="n", delta=5) == {"ok": 5}
        assert await kv("/incr", id="mem", key="n", delta=2) == {"ok": 7}
        assert await kv("/get", id="mem", key="n") == {"ok": (7).to_bytes(8, "big").hex()}
        await kv("/set", id="mem", key="text", value="abc")
        assert await kv("/incr", id="mem", key="text", delta=3) == {"ok": 3}

        assert await kv("/set-many", id="mem", pairs="x=1,y=2") == {"ok": None}
        assert await kv("/get-many", id="mem", keys="x,missing,y") == {
            "ok": [["x", hexed("1")], None, ["y", hexed("2")]]
        }
        assert await kv("/delete-many", id="mem", keys="x,y") == {"ok": None}
        assert await kv("/get-many", id="mem", keys="x,y") == {"ok": [None, None]}

        assert await kv("/fill", id="pages", prefix="k", n=250) == {"error": "access-denied", "detail": None}
        await kv2("/fill", id="mem", prefix="k", n=250)
        first = await kv2("/list", id="mem")
        assert first["ok"]["keys"] == [f"k{i:05}" for i in range(100)] and first["ok"]["cursor"] == 100
        second = await kv2("/list", id="mem", cursor=100)
        assert second["ok"]["keys"] == [f"k{i:05}" for i in range(100, 200)] and second["ok"]["cursor"] == 200
        third = await kv2("/list", id="mem", cursor=200)
        assert third["ok"] == {"keys": [f"k{i:05}" for i in range(200, 250)], "cursor": None}


async def test_nats_backend(agent: Agent, nc: Any, guest: Path) -> None:
    status = await start(nc, agent, "kvn", guest, [keyvalue(), keyvalue({"backend": "nats"}, name="fixed")])
    assert status["workloadState"] == "WORKLOAD_STATE_RUNNING", status
    js = nc.jetstream()
    async with aiohttp.ClientSession() as session:
        kv = Guest(session, agent.http_port, "kvn")
        # The unnamed path creates the bucket named by the identifier.
        assert await kv("/set", id="orders", key="o1", value="pending") == {"ok": None}
        bucket = await js.key_value("orders")
        assert (await bucket.get("o1")).value == b"pending"
        await bucket.put("o2", b"from outside")
        assert await kv("/get", id="orders", key="o2") == {"ok": hexed("from outside")}
        assert await kv("/get", id="orders", key="absent") == {"ok": None}
        assert await kv("/exists", id="orders", key="o1") == {"ok": True}
        assert await kv("/delete", id="orders", key="o1") == {"ok": None}
        assert await kv("/exists", id="orders", key="o1") == {"ok": False}
        assert await kv("/get-many", id="orders", keys="o1,o2") == {"ok": [None, ["o2", hexed("from outside")]]}
        assert await kv("/set-many", id="orders", pairs="a=1,b=2") == {"ok": None}
        assert await kv("/delete-many", id="orders", keys="a,o2") == {"ok": None}
        assert await kv("/get-many", id="orders", keys="a,b,o2") == {"ok": [None, ["b", hexed("2")], None]}

        # Counters: a big-endian u64; a value that is not 8 bytes counts as 0; races add up.
        await bucket.put("hits", b"not a counter")
        assert await kv("/incr", id="orders", key="hits", delta=5) == {"ok": 5}
        assert (await bucket.get("hits")).value == (5).to_bytes(8, "big")
        results = await asyncio.gather(*(kv("/incr", id="orders", key="hits", delta=1) for _ in range(30)))
        assert sorted(r["ok"] for r in results) == list(range(6, 36))
        assert (await bucket.get("hits")).value == (35).to_bytes(8, "big")

        assert (await kv("/set", id="orders", key="bad key", value="x"))["error"] == "other"
        # Through nats-py too (increment), the refusal names the key and what a key may hold.
        refused = await kv("/incr", id="orders", key="views:1", delta=1)
        assert refused["error"] == "other" and "invalid key 'views:1'" in refused["detail"], refused

        assert await kv("/fill", id="big", prefix="p", n=1500) == {"ok": 1500}
        first = await kv("/list", id="big")
        assert first["ok"]["keys"] == [f"p{i:05}" for i in range(1000)] and first["ok"]["cursor"] == 1000
        rest = await kv("/list", id="big", cursor=1000)
        assert rest["ok"] == {"keys": [f"p{i:05}" for i in range(1000, 1500)], "cursor": None}

        # The named path never creates: the bucket must exist.
        assert await kv("/open", id="fixed") == {"error": "no-such-store", "detail": None}
        await js.create_key_value(bucket="fixed")
        assert await kv("/open", id="fixed") == {"ok": "opened"}


async def test_access_and_config_errors(one_process_agent: Agent, nc: Any, guest: Path) -> None:
    agent = one_process_agent
    status = await start(nc, agent, "named-only", guest, [keyvalue(name="cache")])
    assert status["workloadState"] == "WORKLOAD_STATE_RUNNING", status
    async with aiohttp.ClientSession() as session:
        kv = Guest(session, agent.http_port, "named-only")
        assert await kv("/open", id="cache") == {"ok": "opened"}
        assert await kv("/open", id="elsewhere") == {"error": "access-denied", "detail": None}
    bad = await start(nc, agent, "bad-backend", guest, [keyvalue({"backend": "etcd"}, name="cache")])
    assert bad["workloadState"] == "WORKLOAD_STATE_ERROR" and bad.get("retryable", False) is False
    assert ("hostInterfaces entry wasi:keyvalue (name cache): config.backend: unknown value 'etcd' "
            "(expected one of in-memory, nats, redis, filesystem)") in bad["message"]
