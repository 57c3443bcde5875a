"""`wasmfleet serve` grants wasi:keyvalue like `wash dev`: in memory by default, or where --keyvalue points.

Runs the real CLI on the keyvalue-py guest (componentize-py). Checks: without --keyvalue the
component's buckets live in memory (set, get back, increment); --keyvalue redis://... keeps them in a
real redis-server (the test reads the key `<identifier>:<key>` with redis-py); --keyvalue dir:PATH in
PATH/<identifier>/<key>; --keyvalue nats://... in a real nats-server's JetStream KV bucket named by the
identifier (read with nats-py); a malformed --keyvalue is refused with the option named.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
import redis

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.components.build import build_component

from wasmfleet.testing.nats import nats_server
from wasmfleet.testing.redis_server import redis_server

REPO = Path(__file__).resolve().parents[2]
WASMFLEET = str(Path(sys.executable).parent / "wasmfleet")

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def guest() -> Path:
    return build_component("keyvalue-py")


class Served:
    def __init__(self, guest: Path, *args: str) -> None:
        self.proc = subprocess.Popen(
            [WASMFLEET, "serve", str(guest), "--addr", "127.0.0.1:0",
             "--cache-dir", str(REPO / ".cache" / "runtime-test-components"), *args],
            stderr=subprocess.PIPE, text=True)
        assert self.proc.stderr is not None
        line = self.proc.stderr.readline()
        assert "serving" in line, line
        self.port = int(line.split("http://127.0.0.1:")[1].split("/")[0])

    def __call__(self, path: str) -> Any:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=60) as response:
            return json.loads(response.read())

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        assert self.proc.stderr is not None
        self.proc.stderr.close()


@pytest.fixture
def serve(guest: Path) -> Iterator[Any]:
    started: list[Served] = []

    def run(*args: str) -> Served:
        started.append(Served(guest, *args))
        return started[-1]

    yield run
    for served in started:
        served.stop()


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
