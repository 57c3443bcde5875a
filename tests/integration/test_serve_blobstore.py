"""`wasmfleet serve` grants wasi:blobstore like `wash dev`: in memory by default, or where --blobstore points.

Runs the real CLI on the blobstore-py guest (componentize-py). Checks: without --blobstore a
container is created, an object written and read back, in memory; --blobstore dir:PATH keeps the
object in PATH/<container>/<object>; --blobstore nats://... in a real nats-server's JetStream Object
Store bucket named by the container (read with nats-py); a malformed --blobstore (redis://, which
blobstore has no backend for) is refused with the option named.
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
from served_cli import WASMFLEET, Served, serving

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.components.build import build_component

from wasmfleet.testing.nats import nats_server

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def guest() -> Path:
    return build_component("blobstore-py")


@pytest.fixture
def serve(guest: Path) -> Iterator[Callable[..., Served]]:
    with serving(guest) as run:
        yield run


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
