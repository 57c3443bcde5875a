"""`wasmfleet serve` grants wasi:keyvalue like `wash dev`: in memory by default, or where --keyvalue points.

Runs the real CLI on the keyvalue-py guest (componentize-py). Checks: without --keyvalue the
component's buckets live in memory (set, get back, increment); --keyvalue redis://... keeps them in a
real redis-server (the test reads the key `<identifier>:<key>` with redis-py); --keyvalue dir:PATH in
PATH/<identifier>/<key>; --keyvalue nats://... in a real nats-server's JetStream KV bucket named by the
identifier (read with nats-py); a malformed --keyvalue is refused with the option named.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
import redis
from served_cli import WASMFLEET, Served, serving

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.components.build import build_component

from wasmfleet.testing.nats import nats_server
from wasmfleet.testing.redis_server import redis_server

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def guest() -> Path:
    return build_component("keyvalue-py")


@pytest.fixture
def serve(guest: Path) -> Iterator[Callable[..., Served]]:
    with serving(guest) as run:
        yield run


def test_in_memory_by_default(serve: Any) -> None:
    kv = serve()
    assert kv("/set?id=orders&key=a&value=apple") == {"ok": None}
    assert kv("/get?id=orders&key=a") == {"ok": b"apple".hex()}
    assert kv("/incr?id=orders&key=n&delta=2") == {"ok": 2}


def test_redis_and_directory(serve: Any, tmp_path: Path) -> None:
    with redis_server(tmp_path / "redis") as server:
        kv = serve("--keyvalue", server.url)
        assert kv("/set?id=orders&key=a&value=apple") == {"ok": None}
        client = redis.Redis.from_url(server.url)
        assert client.get("orders:a") == b"apple"
        client.close()
    kv = serve("--keyvalue", f"dir:{tmp_path / 'kv'}")
    assert kv("/set?id=orders&key=a&value=apple") == {"ok": None}
    assert (tmp_path / "kv" / "orders" / "a").read_bytes() == b"apple"


def test_nats(serve: Any, tmp_path: Path) -> None:
    with nats_server(tmp_path / "nats") as server:
        kv = serve("--keyvalue", server.url)
        assert kv("/set?id=orders&key=a&value=apple") == {"ok": None}

        async def read() -> bytes:
            nc = await nats.connect(server.url)
            try:
                entry = await (await nc.jetstream().key_value("orders")).get("a")
                return bytes(entry.value or b"")
            finally:
                await nc.close()

        assert asyncio.run(read()) == b"apple"


def test_bad_flag(guest: Path) -> None:
    done = subprocess.run([WASMFLEET, "serve", str(guest), "--keyvalue", "etcd://x"], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2 and "--keyvalue" in done.stderr and "etcd://x" in done.stderr, done.stderr
