"""`wasmfleet serve` grants wasi:blobstore like `wash dev`: in memory by default, or where --blobstore points.

Runs the real CLI on the blobstore-py guest (componentize-py). Checks: without --blobstore a
container is created, an object written and read back, in memory; --blobstore dir:PATH keeps the
object in PATH/<container>/<object>; --blobstore nats://... in a real nats-server's JetStream Object
Store bucket named by the container (read with nats-py); a malformed --blobstore (redis://, which
blobstore has no backend for) is refused with the option named.
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

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.components.build import build_component

from wasmfleet.testing.nats import nats_server

REPO = Path(__file__).resolve().parents[2]
WASMFLEET = str(Path(sys.executable).parent / "wasmfleet")

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def guest() -> Path:
    return build_component("blobstore-py")


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

    def __call__(self, path: str, body: bytes | None = None) -> Any:
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=body,
                                         method="POST" if body is not None else "GET")
        with urllib.request.urlopen(request, timeout=60) as response:
            data = response.read()
            return json.loads(data) if response.headers.get("content-type") == "application/json" else data

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


def write_and_read(blobs: Served) -> None:
    assert blobs("/create?c=photos") == {"name": "photos"}
    assert blobs("/write?c=photos&o=cat.txt", b"meow") == {"written": 4}
    assert blobs("/read?c=photos&o=cat.txt") == b"meow"


def test_in_memory_by_default(serve: Any) -> None:
    write_and_read(serve())


def test_directory(serve: Any, tmp_path: Path) -> None:
    write_and_read(serve("--blobstore", f"dir:{tmp_path / 'blobs'}"))
    assert (tmp_path / "blobs" / "photos" / "cat.txt").read_bytes() == b"meow"


def test_nats(serve: Any, tmp_path: Path) -> None:
    with nats_server(tmp_path / "nats") as server:
        write_and_read(serve("--blobstore", server.url))

        async def read() -> bytes:
            nc = await nats.connect(server.url)
            try:
                found = await (await nc.jetstream().object_store("photos")).get("cat.txt")
                return bytes(found.data or b"")
            finally:
                await nc.close()

        assert asyncio.run(read()) == b"meow"


def test_bad_flag(guest: Path) -> None:
    done = subprocess.run([WASMFLEET, "serve", str(guest), "--blobstore", "redis://x"], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2 and "--blobstore" in done.stderr and "redis://x" in done.stderr, done.stderr
