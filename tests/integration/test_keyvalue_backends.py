"""Every wasi:keyvalue backend (in-memory, NATS JetStream KV, Redis, filesystem) through real guests.

The guests are tests/components/keyvalue-py (componentize-py), on every backend, and its twin
keyvalue-js (componentize-js, same paths and answers), on the in-memory and NATS backends. The host
agent runs on a real nats-server with JetStream; Redis is Debian's redis-server
(scripts/deps.d/redis.sh); the test reads each store directly (nats-py, redis-py, the files) to
check what the backend really holds.

Checks, per backend on a named entry: an identifier no entry names is error::access-denied; a missing
key is Ok(none) and exists false; set/get/delete; a large value (2 MB; 1,000,000 bytes on NATS, whose
default max_payload is 1 MiB, where a larger one is error::other naming the cause) round-trips byte
for byte; increment from nothing, of a non-8-byte value (counts as 0), and 30 concurrent increments
(from two worker processes, except in memory) add exactly 30, stored as a big-endian u64;
get-many/set-many/delete-many with a missing key; list-keys walks past one page (pages of 100 in
memory, 1000 elsewhere, cursor = offset) and returns every key once in sorted order.
Also: the unnamed path on Redis and filesystem keeps buckets apart by identifier; filesystem keys
with '/', '..' and '%' stay inside root and list back exactly; missing url/root and unknown backends
fail the workload start naming the entry and the key; a stopped Redis or NATS gives error::other with
the cause well before the request deadline, and the same workload works again once it is back.
keyvalue-js on NATS runs suspended on the worker's loop (runtime.suspension), so these checks cover
that path too; the others run on wasm threads or inline. It also runs suspended against a data plane
that requires TLS with client certificates (the Helm chart's default), through the loop lane.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import nats
import pytest
import redis

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.components.build import build_component
from tests.components.build import cache_dir as build_dir
from tests.integration.test_keyvalue_plugin import Guest, keyvalue, start

from wasmfleet.artifacts.fetching import ArtifactSettings
from wasmfleet.bus.connection_options import NatsConnectionOptions
from wasmfleet.host.agent import Agent
from wasmfleet.host.policy import HostPolicy
from wasmfleet.host.settings import BusSettings, HostSettings, Identity, LifecycleSettings, ServingSettings
from wasmfleet.testing.nats import NatsServer, free_port, nats_server
from wasmfleet.testing.pki import make_pki, nats_tls_block
from wasmfleet.testing.redis_server import RedisServer, redis_server

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.timeout(400)

BACKENDS = ("in-memory", "nats", "redis", "filesystem")
PAGE = {"in-memory": 100, "nats": 1000, "redis": 1000, "filesystem": 1000}
LARGE = {"in-memory": 2_000_000, "nats": 1_000_000, "redis": 2_000_000, "filesystem": 2_000_000}


@pytest.fixture(scope="module")
def guest() -> Path:
    return build_component("keyvalue-py")


CASES = [("keyvalue-py", b) for b in BACKENDS] + [("keyvalue-js", "in-memory"), ("keyvalue-js", "nats")]
"""The componentize-py guest on every backend, its componentize-js twin on the in-memory and NATS ones."""


@pytest.fixture
def bus(tmp_path: Path) -> Iterator[NatsServer]:
    with nats_server(tmp_path / "nats") as server:
        yield server


@pytest.fixture
def redis_srv(tmp_path: Path) -> Iterator[RedisServer]:
    with redis_server(tmp_path / "redis") as server:
        yield server


async def make_agent(tmp_path: Path, bus: NatsServer, workers: int, data_url: str = "",
                     data_login: NatsConnectionOptions | None = None) -> Agent:
    host = Agent(HostSettings(
        identity=Identity(labels={"hostgroup": "default"}),
        bus=BusSettings(nats_url=bus.url, heartbeat_interval_s=0.3, reconnect_wait_s=0.1,
                        data_nats_url=data_url, data_connection=data_login),
        serving=ServingSettings(http_host="127.0.0.1", http_port=0, workers=workers),
        lifecycle=LifecycleSettings(drain_timeout_s=2, data_dir=tmp_path / "host"),
        artifacts=ArtifactSettings(cache_dir=tmp_path / "artifacts"),
        runtime_cache_dir=REPO / ".cache" / "runtime-test-components",
        policy=HostPolicy(file_roots=(build_dir(),)),
    ))
    await host.start()
    return host


@pytest.fixture
async def nc(bus: NatsServer) -> AsyncIterator[Any]:
    client = await nats.connect(bus.url)
    try:
        yield client
    finally:
        await client.close()


class Store:
    """Reads what a backend really holds, beside the guest."""

    def __init__(self, backend: str, nc: Any, redis_url: str, root: Path) -> None:
        self.backend, self.nc, self.root, self.redis_url = backend, nc, root, redis_url
        self.redis = redis.Redis.from_url(redis_url)

    async def config(self) -> dict[str, str]:
        if self.backend == "nats":
            await self.nc.jetstream().create_key_value(bucket="kvtest")  # a named bucket must exist
            return {"backend": "nats", "bucket": "kvtest"}
        if self.backend == "redis":
            return {"backend": "redis", "url": self.redis_url, "prefix": "t:"}
        if self.backend == "filesystem":
            self.root.mkdir(parents=True)
            return {"backend": "filesystem", "root": str(self.root)}
        return {"backend": "in-memory"}

    async def raw(self, key: str) -> bytes | None:
        if self.backend == "nats":
            kv = await self.nc.jetstream().key_value("kvtest")
            try:
                return bytes((await kv.get(key)).value or b"")
            except nats.js.errors.KeyNotFoundError:
                return None
        if self.backend == "redis":
            value = self.redis.get("t:" + key)
            return None if value is None else bytes(value)  # type: ignore[arg-type]
        if self.backend == "filesystem":
            path = self.root / key
            return path.read_bytes() if path.exists() else None
        return None  # in memory: only the guest sees it


async def answer_once_back(kv: Guest, store: str, key: str) -> dict[str, Any]:
    """The guest's get of `key` once its backend answers again (within 20 s)."""
    deadline = time.monotonic() + 20
    while True:  # nats-py reconnects every 0.5 s
        got: dict[str, Any] = await kv("/get", id=store, key=key)
        if "ok" in got or time.monotonic() > deadline:
            return got
        await asyncio.sleep(0.5)


@pytest.mark.parametrize(("guest_name", "backend"), CASES)
async def test_backend_semantics(guest_name: str, backend: str, tmp_path: Path, bus: NatsServer,
                                 redis_srv: RedisServer, nc: Any) -> None:
    guest = build_component(guest_name)
    # In-memory buckets live in each worker process: one process there, two elsewhere (races).
    agent = await make_agent(tmp_path, bus, workers=1 if backend == "in-memory" else 2)
    store = Store(backend, nc, redis_srv.url, tmp_path / "kvroot")
    try:
        status = await start(nc, agent, f"kv-{backend}", guest, [keyvalue(await store.config(), name="store")])
        assert status["workloadState"] == "WORKLOAD_STATE_RUNNING", status
        async with aiohttp.ClientSession() as session:
            kv = Guest(session, agent.http_port, f"kv-{backend}")
            assert await kv("/open", id="elsewhere") == {"error": "access-denied", "detail": None}
            assert await kv("/get", id="store", key="absent") == {"ok": None}
            assert await kv("/exists", id="store", key="absent") == {"ok": False}
            assert await kv("/set", id="store", key="a", value="apple") == {"ok": None}
            assert await kv("/get", id="store", key="a") == {"ok": b"apple".hex()}
            assert await kv("/exists", id="store", key="a") == {"ok": True}
            if backend != "in-memory":
                assert await store.raw("a") == b"apple"
            assert await kv("/delete", id="store", key="a") == {"ok": None}
            assert await kv("/get", id="store", key="a") == {"ok": None}
            assert await store.raw("a") is None

            size = LARGE[backend]
            assert await kv("/set-large", id="store", key="big", size=size) == {"ok": size}
            assert await kv("/check-large", id="store", key="big") == {"ok": {"size": size, "pattern": True}}
            if backend != "in-memory":
                assert len(await store.raw("big") or b"") == size
            if backend == "nats":
                too_big = await kv("/set-large", id="store", key="bigger", size=2_000_000)
                assert too_big["error"] == "other" and "payload" in too_big["detail"].lower(), too_big

            assert await kv("/incr", id="store", key="n", delta=5) == {"ok": 5}
            await kv("/set", id="store", key="text", value="abc")
            assert await kv("/incr", id="store", key="text", delta=3) == {"ok": 3}
            results = await asyncio.gather(*(kv("/incr", id="store", key="n", delta=1) for _ in range(30)))
            assert sorted(r["ok"] for r in results) == list(range(6, 36))
            assert await kv("/get", id="store", key="n") == {"ok": (35).to_bytes(8, "big").hex()}
            if backend != "in-memory":
                assert await store.raw("n") == (35).to_bytes(8, "big")

            assert await kv("/set-many", id="store", pairs="x=1,y=2") == {"ok": None}
            assert await kv("/get-many", id="store", keys="x,missing,y") == {
                "ok": [["x", b"1".hex()], None, ["y", b"2".hex()]]}
            assert await kv("/delete-many", id="store", keys="x,y,missing") == {"ok": None}
            assert await kv("/get-many", id="store", keys="x,y") == {"ok": [None, None]}

            page = PAGE[backend]
            n = page + page // 2
            assert await kv("/fill", id="store", prefix="p", n=n) == {"ok": n}
            expected = sorted([f"p{i:05}" for i in range(n)] + ["big", "n", "text"])
            seen: list[str] = []
            cursor: int | None = None
            pages = 0
            while True:
                got = await kv("/list", id="store", **({"cursor": cursor} if cursor is not None else {}))
                seen += got["ok"]["keys"]
                pages += 1
                cursor = got["ok"]["cursor"]
                if cursor is None:
                    break
                assert len(got["ok"]["keys"]) == page and cursor == len(seen)
            assert pages == 2 and seen == expected
        # Where the guest ran: keyvalue-js on NATS suspended on the loop while NATS answered (its
        # imports wait on nothing else); keyvalue-py imports wasi:sockets, so it runs on threads.
        runs = {("keyvalue-js", "nats"): "suspended", ("keyvalue-js", "in-memory"): "inline"}
        assert agent.server is not None
        stats = await agent.server.stats_async()
        assert {w["workloads"][f"kv-{backend}"]["runs"] for w in stats["workers"]} == {
            runs.get((guest_name, backend), "thread")}, stats
    finally:
        store.redis.close()
        await agent.shutdown()


async def test_unnamed_paths_and_filesystem_keys(tmp_path: Path, bus: NatsServer, redis_srv: RedisServer,
                                                 nc: Any, guest: Path) -> None:
    agent = await make_agent(tmp_path, bus, workers=1)
    root = tmp_path / "fsroot"
    try:
        s1 = await start(nc, agent, "unnamed-redis", guest,
                         [keyvalue({"backend": "redis", "url": redis_srv.url, "prefix": "app/"})])
        s2 = await start(nc, agent, "unnamed-fs", guest, [keyvalue({"backend": "filesystem", "root": str(root)})])
        assert s1["workloadState"] == s2["workloadState"] == "WORKLOAD_STATE_RUNNING", (s1, s2)
        r = redis.Redis.from_url(redis_srv.url)
        async with aiohttp.ClientSession() as session:
            kv_r = Guest(session, agent.http_port, "unnamed-redis")
            kv_f = Guest(session, agent.http_port, "unnamed-fs")
            await kv_r("/set", id="orders", key="k", value="1")
            await kv_r("/set", id="users", key="k", value="2")
            assert r.get("app/orders:k") == b"1" and r.get("app/users:k") == b"2"
            assert (await kv_r("/list", id="orders"))["ok"] == {"keys": ["k"], "cursor": None}

            for key in ("../escape", "a/b", "..", "50%", "ünï"):
                assert await kv_f("/set", id="b1", key=key, value=key) == {"ok": None}, key
            assert await kv_f("/set", id="../up", key="k", value="v") == {"ok": None}
            listed = (await kv_f("/list", id="b1"))["ok"]
            assert listed == {"keys": sorted(["../escape", "a/b", "..", "50%", "ünï"]), "cursor": None}
            assert await kv_f("/get", id="b1", key="../escape") == {"ok": b"../escape".hex()}
            # Everything stayed under root, one plain file per key, in one directory per bucket.
            files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
            assert all(not part.startswith("..") for f in files for part in f.split("/")), files
            assert not (tmp_path / "escape").exists() and not (root.parent / "up").exists()
            assert {f.split("/")[0] for f in files} == {"b1", "%2E%2E%2Fup"}
            assert (await kv_f("/set", id="b1", key="", value="x"))["error"] == "other"
        r.close()
    finally:
        await agent.shutdown()


async def test_bad_backend_config_fails_the_start(tmp_path: Path, bus: NatsServer, nc: Any, guest: Path) -> None:
    agent = await make_agent(tmp_path, bus, workers=1)
    try:
        cases = [
            ({"backend": "redis"}, "config.url: required by backend redis"),
            ({"backend": "filesystem"}, "config.root: required by backend filesystem"),
            ({"backend": "etcd"}, "config.backend: unknown value 'etcd' (expected one of in-memory, nats, redis, "
                                  "filesystem)"),
            ({"backend": "redis", "url": "redis://x", "root": "/tmp"}, "config.root: not a key of backend redis"),
        ]
        for i, (config, message) in enumerate(cases):
            status = await start(nc, agent, f"bad{i}", guest, [keyvalue(config, name="sessions")])
            assert status["workloadState"] == "WORKLOAD_STATE_ERROR", status
            assert f"hostInterfaces entry wasi:keyvalue (name sessions): {message}" in status["message"], status
    finally:
        await agent.shutdown()


async def test_backend_down_and_back(tmp_path: Path, bus: NatsServer, redis_srv: RedisServer, nc: Any,
                                     guest: Path) -> None:
    agent = await make_agent(tmp_path, bus, workers=1)
    try:
        await nc.jetstream().create_key_value(bucket="down")
        status = await start(nc, agent, "down", guest, [
            keyvalue({"backend": "redis", "url": redis_srv.url}, name="r"),
            keyvalue({"backend": "nats", "bucket": "down"}, name="n"),
        ])
        assert status["workloadState"] == "WORKLOAD_STATE_RUNNING", status
        async with aiohttp.ClientSession() as session:
            kv = Guest(session, agent.http_port, "down")
            assert await kv("/set", id="r", key="k", value="v") == {"ok": None}
            assert await kv("/set", id="n", key="k", value="v") == {"ok": None}

            redis_srv.stop()
            began = time.monotonic()
            down = await kv("/get", id="r", key="k")
            assert down["error"] == "other" and "Redis" in down["detail"] and "Connection" in down["detail"], down
            assert time.monotonic() - began < 10
            redis_srv.start()
            assert await kv("/set", id="r", key="k", value="again") == {"ok": None}
            assert await kv("/get", id="r", key="k") == {"ok": b"again".hex()}

            await nc.close()
            bus.stop()
            began = time.monotonic()
            down = await kv("/get", id="n", key="k")
            assert down["error"] == "other" and "NATS" in down["detail"], down
            assert time.monotonic() - began < 15
            bus.start()
            assert await answer_once_back(kv, "n", "k") == {"ok": b"v".hex()}
    finally:
        await agent.shutdown()


async def test_suspended_guest_waits_for_nats_without_holding_the_worker(
        tmp_path: Path, bus: NatsServer, nc: Any) -> None:
    """keyvalue-js on NATS alone runs suspended on the worker's loop. With NATS stopped, its get
    waits (retrying) and then answers error::other; meanwhile another workload of the same single
    worker process answers at once. Once NATS is back, the same workload works again."""
    guest = build_component("keyvalue-js")
    agent = await make_agent(tmp_path, bus, workers=1)
    try:
        await nc.jetstream().create_key_value(bucket="down")
        waiting = await start(nc, agent, "waiting", guest, [keyvalue({"backend": "nats", "bucket": "down"}, name="n")])
        other = await start(nc, agent, "other", guest, [keyvalue({"backend": "in-memory"}, name="m")])
        assert waiting["workloadState"] == other["workloadState"] == "WORKLOAD_STATE_RUNNING", (waiting, other)
        assert agent.server is not None
        stats = await agent.server.stats_async()
        assert stats["workers"][0]["workloads"]["waiting"]["runs"] == "suspended", stats
        async with aiohttp.ClientSession() as session:
            kv = Guest(session, agent.http_port, "waiting")
            mem = Guest(session, agent.http_port, "other")
            assert await kv("/set", id="n", key="k", value="v") == {"ok": None}

            await nc.close()
            bus.stop()
            began = time.monotonic()
            down = asyncio.ensure_future(kv("/get", id="n", key="k"))
            await asyncio.sleep(0.5)
            assert not down.done()  # still trying NATS
            for i in range(5):  # the worker's loop is free: the other workload answers at once
                asked = time.monotonic()
                assert await mem("/set", id="m", key="k", value=str(i)) == {"ok": None}
                assert time.monotonic() - asked < 1.0
            answer = await down
            assert answer["error"] == "other" and "NATS" in answer["detail"], answer
            assert time.monotonic() - began < 15

            bus.start()
            assert await answer_once_back(kv, "n", "k") == {"ok": b"v".hex()}
    finally:
        await agent.shutdown()


async def test_suspended_guest_on_a_tls_data_plane(tmp_path: Path, bus: NatsServer, nc: Any) -> None:
    """The data plane on a nats-server that requires TLS with client certificates, as the Helm
    chart's does: keyvalue-js on it still runs suspended, its set/get/increment land in that
    server's bucket, and the host's keyvalue connection there is the loop lane's, over TLS (seen in
    the server's own connection list, /connz)."""
    pki = make_pki(tmp_path / "pki")
    port, monitor = free_port(), free_port()
    config = tmp_path / "tls-nats.conf"
    config.write_text(f'listen: 127.0.0.1:{port}\nhttp: 127.0.0.1:{monitor}\n'
                      f'jetstream {{ store_dir: "{tmp_path / "tls-js"}" }}\n{nats_tls_block(pki)}\n')
    login = NatsConnectionOptions(tls_ca=pki / "ca.pem", tls_cert=pki / "client.pem", tls_key=pki / "client-key.pem")
    guest = build_component("keyvalue-js")
    with NatsServer(tmp_path / "tls-nats", port, config=config) as data:
        direct = await nats.connect(data.url, **login.connect_kwargs())
        agent = await make_agent(tmp_path, bus, workers=1, data_url=data.url, data_login=login)
        try:
            await direct.jetstream().create_key_value(bucket="secure")
            grant = keyvalue({"backend": "nats", "bucket": "secure"}, name="s")
            status = await start(nc, agent, "secure", guest, [grant])
            assert status["workloadState"] == "WORKLOAD_STATE_RUNNING", status
            assert agent.server is not None
            stats = await agent.server.stats_async()
            assert stats["workers"][0]["workloads"]["secure"]["runs"] == "suspended", stats
            async with aiohttp.ClientSession() as session:
                kv = Guest(session, agent.http_port, "secure")
                assert await kv("/set", id="s", key="k", value="v") == {"ok": None}
                assert await kv("/get", id="s", key="k") == {"ok": b"v".hex()}
                assert await kv("/incr", id="s", key="n", delta="3") == {"ok": 3}
                entry = await (await direct.jetstream().key_value("secure")).get("k")
                assert entry.value == b"v"
                async with session.get(f"http://127.0.0.1:{monitor}/connz?subs=0") as resp:
                    connections = (await resp.json())["connections"]
            lanes = [c for c in connections if c.get("name", "").endswith(" keyvalue")]
            assert lanes and all(c.get("tls_version") for c in lanes), connections
        finally:
            await agent.shutdown()
            await direct.close()
