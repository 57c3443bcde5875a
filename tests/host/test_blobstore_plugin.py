"""wasi:blobstore@0.2.0-draft through a real guest (tests/components/blobstore-py, componentize-py)
served by WasmServer over real HTTP, against each backend: in-memory (the unnamed entry without
host NATS), NATS (the unnamed entry on a host with NATS: a real nats-server with JetStream) and
filesystem (config.root in tmp_path).

Checks, on every backend: each function of blobstore, container and types (create/get/delete/
exists of containers, copy and move, name and info, write-data and get-data, list-objects with
read/skip pages past one page, delete-object(s), has-object, object-info, clear, outgoing-value's
body given once, consume-sync and consume-async, incoming-value size); a 10 MB object written and
read back byte-exact (streamed, and with write-data after the body); get-data ranges with both
ends inclusive and clipped to the object; missing containers and objects, and container names a
backend cannot hold, are error strings; an
outgoing-value dropped without finish stores nothing.
Then: a component granted wasi:blobstore never runs inline on the event loop; a named entry serves
the container of its name on its own backend, config.buckets refuses other containers
("unauthorized"), config.read_only refuses writes but allows reads; object names cannot leave the
filesystem root; a client that stops reading does not make the host buffer a streamed object; a
component importing wasi:blobstore without the grant fails the call (deny by default); bad entries
are refused at workload start naming the entry and key; with NATS stopped a call answers an error
string naming NATS within the grace period, and works again once NATS is back.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import io
import json
import os
import socket
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from runtime_harness import _dechunk as dechunk
from runtime_harness import build, make_spec

from wasmfleet.host.plugin_api.host_plugins import HostContext
from wasmfleet.host.runtime import plugin_registry, specs
from wasmfleet.host.runtime.server import WasmServer
from wasmfleet.testing.nats import NatsServer, nats_server

pytestmark = pytest.mark.timeout(300)

BACKENDS = ("in-memory", "nats", "filesystem")


@pytest.fixture(scope="module")
def blobstore_wasm() -> Path:
    return build("blobstore-py")


@pytest.fixture(scope="module")
def nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    with nats_server(tmp_path_factory.mktemp("nats")) as server:
        yield server


class Guest:
    """The guest's routes as calls: (status, parsed JSON or raw bytes)."""

    def __init__(self, session: aiohttp.ClientSession, port: int, host: str = "blob.test") -> None:
        self.session = session
        self.base = f"http://127.0.0.1:{port}"
        self.host = host

    async def call(self, path: str, data: bytes | None = None, **query: Any) -> tuple[int, Any]:
        params = {k: str(v) for k, v in query.items()}
        method = "POST" if data is not None else "GET"
        # A file-like body: aiohttp warns (ResourceWarning, an error here) on large raw bytes.
        payload = io.BytesIO(data) if data is not None else None
        async with self.session.request(method, self.base + path, params=params, data=payload,
                                        headers={"Host": self.host}) as r:
            body = await r.read()
            if r.headers.get("content-type", "").startswith("application/json"):
                return r.status, json.loads(body)
            return r.status, body

    async def ok(self, path: str, data: bytes | None = None, **query: Any) -> Any:
        status, body = await self.call(path, data, **query)
        assert status == 200, (path, query, status, body)
        return body

    async def error(self, path: str, **query: Any) -> str:
        status, body = await self.call(path, **query)
        assert status == 422, (path, query, status, body)
        message: str = body["error"]
        return message

    async def read(self, c: str, o: str, **query: Any) -> tuple[bytes, int]:
        async with self.session.get(self.base + "/read", params={"c": c, "o": o, **{k: str(v) for k, v in
                                                                                   query.items()}},
                                    headers={"Host": self.host}) as r:
            assert r.status == 200, (r.status, await r.read())
            return await r.read(), int(r.headers["x-size"])


def grants_for(backend: str, root: Path) -> tuple[specs.Grant, ...]:
    """The unnamed entry: host default (in-memory / nats) or explicitly filesystem."""
    config = {"backend": "filesystem", "root": str(root)} if backend == "filesystem" else {}
    return (specs.Grant("wasi", "blobstore", config=config),)


@pytest.fixture
async def served(request: pytest.FixtureRequest, blobstore_wasm: Path, persistent_settings: specs.RuntimeSettings,
                 tmp_path: Path) -> AsyncIterator[tuple[Guest, str]]:
    """A WasmServer running the guest with one unnamed wasi:blobstore entry on `request.param`."""
    backend: str = request.param
    host = HostContext(host_id="blob-host", nats_url=request.getfixturevalue("nats").url if backend == "nats" else "")
    settings = dataclasses.replace(persistent_settings, plugin_host=host)
    server = WasmServer("127.0.0.1", 0, workers=1, settings=settings)
    await server.start()
    workload = f"wl-{backend}-{os.getpid()}-{time.monotonic_ns()}"
    await server.route(workload, ["blob.test"], make_spec(blobstore_wasm, workload,
                                                          grants=grants_for(backend, tmp_path / "blobs")))
    try:
        async with aiohttp.ClientSession() as session:
            yield Guest(session, server.port), backend
    finally:
        await server.stop(2)


def flat(pages: list[list[str]]) -> list[str]:
    return [name for page in pages for name in page]


def unique(prefix: str) -> str:
    """Container names unique per test (NATS keeps buckets across tests of the module)."""
    return f"{prefix}{time.monotonic_ns() % 10**12}"


@pytest.mark.parametrize("served", BACKENDS, indirect=True)
async def test_containers_objects_and_metadata(served: tuple[Guest, str]) -> None:
    guest, backend = served
    c = unique("box")
    if backend != "in-memory":  # a name the backend cannot hold is an error string, not a trap
        message = await guest.error("/create", c="has space" if backend == "nats" else ".hidden")
        assert ("NATS" in message) if backend == "nats" else ("invalid container name" in message), message
    assert await guest.ok("/exists", c=c) == {"exists": False}
    assert "does not exist" in await guest.error("/get", c=c)
    assert await guest.ok("/create", c=c) == {"name": c}
    assert "already exists" in await guest.error("/create", c=c)
    got = await guest.ok("/get", c=c)
    assert got["name"] == c and got["info"]["name"] == c
    assert abs(got["info"]["created_at"] - time.time()) < 120
    assert await guest.ok("/exists", c=c) == {"exists": True}

    assert await guest.ok("/write", b"hello blobs", c=c, o="greeting") == {"written": 11}
    assert await guest.ok("/has", c=c, o="greeting") == {"has": True}
    assert await guest.ok("/has", c=c, o="absent") == {"has": False}
    info = await guest.ok("/info", c=c, o="greeting")
    assert (info["name"], info["container"], info["size"]) == ("greeting", c, 11)
    assert abs(info["created_at"] - time.time()) < 120
    assert "does not exist" in await guest.error("/info", c=c, o="absent")
    assert await guest.read(c, "greeting") == (b"hello blobs", 11)
    status, body = await guest.call("/read-sync", c=c, o="greeting")
    assert (status, body) == (200, b"hello blobs")
    assert "does not exist" in await guest.error("/read", c=c, o="absent")
    # An empty object is an object.
    assert await guest.ok("/write", b"", c=c, o="empty") == {"written": 0}
    assert await guest.read(c, "empty") == (b"", 0)

    # Replace, copy (same and another container), move.
    await guest.ok("/write", b"second version", c=c, o="greeting")
    assert (await guest.read(c, "greeting"))[0] == b"second version"
    other = unique("other")
    await guest.ok("/create", c=other)
    await guest.ok("/copy", sc=c, so="greeting", dc=c, do="copy")
    await guest.ok("/copy", sc=c, so="greeting", dc=other, do="elsewhere")
    assert (await guest.read(other, "elsewhere"))[0] == b"second version"
    assert "does not exist" in await guest.error("/copy", sc=c, so="greeting", dc=unique("nobox"), do="x")
    assert "does not exist" in await guest.error("/copy", sc=c, so="absent", dc=other, do="x")
    await guest.ok("/move", sc=c, so="copy", dc=other, do="moved")
    assert await guest.ok("/has", c=c, o="copy") == {"has": False}
    assert (await guest.read(other, "moved"))[0] == b"second version"

    # Deletes: one (absent is fine), several, clear, the container.
    await guest.ok("/delete-object", c=c, o="absent")
    await guest.ok("/delete-object", c=c, o="empty")
    assert await guest.ok("/has", c=c, o="empty") == {"has": False}
    await guest.ok("/delete-objects", c=other, o="elsewhere,moved,absent")
    assert (await guest.ok("/list", c=other, page=10))["pages"] == [[]]
    await guest.ok("/clear", c=c)
    assert (await guest.ok("/list", c=c, page=10))["pages"] == [[]]
    await guest.ok("/delete-container", c=other)
    await guest.ok("/delete-container", c=other)  # absent: not an error
    assert await guest.ok("/exists", c=other) == {"exists": False}
    await guest.ok("/delete-container", c=c)


@pytest.mark.parametrize("served", BACKENDS, indirect=True)
async def test_listing_pages_and_skips_past_one_page(served: tuple[Guest, str]) -> None:
    guest, _ = served
    c = unique("list")
    await guest.ok("/create", c=c)
    names = [f"obj-{i:03d}" for i in range(25)]
    for name in names:
        await guest.ok("/write", name.encode(), c=c, o=name)
    listed = await guest.ok("/list", c=c, page=10)
    assert [len(p) for p in listed["pages"]] == [10, 10, 5]
    assert listed["end_flags"] == [False, False, True]
    assert flat(listed["pages"]) == names  # sorted, on every backend
    skipped = await guest.ok("/list", c=c, page=10, skip=7)
    assert (skipped["skipped"], skipped["skip_end"]) == (7, False)
    assert flat(skipped["pages"]) == names[7:]
    past = await guest.ok("/list", c=c, page=10, skip=40)
    assert (past["skipped"], past["skip_end"], past["pages"]) == (25, True, [[]])


@pytest.mark.parametrize("served", BACKENDS, indirect=True)
async def test_get_data_ranges_are_inclusive_and_clipped(served: tuple[Guest, str]) -> None:
    guest, _ = served
    c = unique("range")
    await guest.ok("/create", c=c)
    data = bytes(range(256)) * 1200  # 307200 bytes: several NATS chunks (128 KiB)
    await guest.ok("/write", data, c=c, o="r")
    cases = [(0, 0), (0, 9), (10, 19), (131070, 131075), (200000, 307199), (300000, 10**9), (307199, 307199)]
    for start, end in cases:
        got, size = await guest.read(c, "r", start=start, end=end)
        want = data[start:end + 1]
        assert got == want and size == len(want), (start, end, len(got))
    assert await guest.read(c, "r", start=400000, end=500000) == (b"", 0)
    assert await guest.read(c, "r", start=20, end=10) == (b"", 0)
    status, body = await guest.call("/read-sync", c=c, o="r", start=5, end=14)
    assert (status, body) == (200, data[5:15])


@pytest.mark.parametrize("served", BACKENDS, indirect=True)
async def test_ten_megabytes_round_trip_streamed(served: tuple[Guest, str]) -> None:
    guest, _ = served
    c = unique("big")
    await guest.ok("/create", c=c)
    data = os.urandom(10 << 20)
    assert await guest.ok("/write", data, c=c, o="big") == {"written": len(data)}
    got, size = await guest.read(c, "big")
    assert size == len(data) and hashlib.sha256(got).digest() == hashlib.sha256(data).digest()
    # write-data after the body: the bytes wait in a spool, then stream to the object.
    assert await guest.ok("/write", data[:3 << 20], c=c, o="late", late="1") == {"written": 3 << 20}
    assert (await guest.read(c, "late"))[0] == data[:3 << 20]
    assert (await guest.ok("/info", c=c, o="big"))["size"] == len(data)


@pytest.mark.parametrize("served", BACKENDS, indirect=True)
async def test_values_without_finish_or_with_a_second_body(served: tuple[Guest, str]) -> None:
    guest, _ = served
    c = unique("vals")
    await guest.ok("/create", c=c)
    assert await guest.ok("/double-body") == {"second": "error"}
    assert await guest.ok("/unfinished", c=c, o="ghost") == {"dropped": True}
    assert await guest.ok("/has", c=c, o="ghost") == {"has": False}
    await guest.ok("/write", b"kept", c=c, o="ghost")
    await guest.ok("/unfinished", c=c, o="ghost")  # an unfinished replacement leaves the old one
    assert (await guest.read(c, "ghost"))[0] == b"kept"


# ---- entries, permissions, bad input --------------------------------------------------------------


async def serve_with(wasm: Path, settings: specs.RuntimeSettings, grants: tuple[specs.Grant, ...],
                     workload: str) -> WasmServer:
    server = WasmServer("127.0.0.1", 0, workers=1, settings=settings)
    await server.start()
    await server.route(workload, ["blob.test"], make_spec(wasm, workload, grants=grants))
    return server


async def test_named_entries_buckets_and_read_only(blobstore_wasm: Path, persistent_settings: specs.RuntimeSettings,
                                                   tmp_path: Path) -> None:
    root = tmp_path / "files"
    grants = (
        specs.Grant("wasi", "blobstore", config={"buckets": "open,shared"}),
        specs.Grant("wasi", "blobstore", name="photos", config={"backend": "filesystem", "root": str(root)}),
        specs.Grant("wasi", "blobstore", name="archive", config={"backend": "in-memory", "read_only": "true"}),
    )
    server = await serve_with(blobstore_wasm, persistent_settings, grants, "named-wl")
    try:
        # Granted a blocking interface: the guest runs on the wasm thread, never on the event loop.
        assert server._core is not None and server._core.routes.by_workload["named-wl"].component.may_block
        async with aiohttp.ClientSession() as session:
            guest = Guest(session, server.port)
            # "photos" goes to the filesystem entry: the container is a directory under its root.
            await guest.ok("/create", c="photos")
            await guest.ok("/write", b"jpeg bytes", c="photos", o="2024/cat.jpg")
            assert (root / "photos" / "2024" / "cat.jpg").read_bytes() == b"jpeg bytes"
            assert (await guest.ok("/list", c="photos", page=5))["pages"] == [["2024/cat.jpg"]]
            # Other names go to the unnamed (in-memory) entry, limited to its buckets.
            await guest.ok("/create", c="open")
            assert not (root / "open").exists()
            assert (await guest.error("/create", c="secret")).startswith("unauthorized")
            assert (await guest.error("/get", c="secret")).startswith("unauthorized")
            # Cross-entry copy streams between backends.
            await guest.ok("/copy", sc="photos", so="2024/cat.jpg", dc="open", do="cat")
            assert (await guest.read("open", "cat"))[0] == b"jpeg bytes"
            # The read-only entry refuses writes (its container cannot even be created).
            message = await guest.error("/create", c="archive")
            assert message.startswith("unauthorized") and "read-only" in message
            assert "does not exist" in await guest.error("/get", c="archive")
            assert (await guest.error("/copy", sc="open", so="cat", dc="archive", do="x")).startswith("unauthorized")
            # Names that would leave the root.
            for bad in ("../escape", "/etc/passwd", "a/../../b", "a//b"):
                assert "invalid object name" in await guest.error("/write", c="photos", o=bad)
            assert not (tmp_path / "escape").exists()
            os.symlink(tmp_path, root / "photos" / "link")
            assert "outside" in await guest.error("/write", c="photos", o="link/escaped")
            assert not (tmp_path / "escaped").exists()
    finally:
        await server.stop(2)


async def test_read_only_entry_reads_what_is_there(blobstore_wasm: Path, persistent_settings: specs.RuntimeSettings,
                                                   tmp_path: Path) -> None:
    root = tmp_path / "ro"
    (root / "docs").mkdir(parents=True)
    (root / "docs" / "readme").write_bytes(b"read me")
    grants = (specs.Grant("wasi", "blobstore", config={"backend": "filesystem", "root": str(root),
                                                          "read_only": "true"}),)
    server = await serve_with(blobstore_wasm, persistent_settings, grants, "ro-wl")
    try:
        async with aiohttp.ClientSession() as session:
            guest = Guest(session, server.port)
            assert (await guest.read("docs", "readme"))[0] == b"read me"
            assert (await guest.ok("/list", c="docs", page=5))["pages"] == [["readme"]]
            for path, query in (("/write", {"o": "new"}), ("/delete-object", {"o": "readme"}), ("/clear", {}),
                                ("/delete-container", {})):
                status, body = await guest.call(path, b"x" if path == "/write" else None, c="docs", **query)
                assert status == 422 and body["error"].startswith("unauthorized"), (path, body)
            assert (root / "docs" / "readme").read_bytes() == b"read me"
    finally:
        await server.stop(2)


async def test_without_the_grant_the_call_is_denied(blobstore_wasm: Path,
                                                    persistent_settings: specs.RuntimeSettings) -> None:
    server = await serve_with(blobstore_wasm, persistent_settings, (), "denied-wl")
    try:
        async with aiohttp.ClientSession() as session:
            status, body = await Guest(session, server.port).call("/exists", c="x")
            assert status == 500
            assert b"not granted" in body
    finally:
        await server.stop(2)


def test_bad_entries_are_refused_at_start_naming_the_entry_and_key() -> None:
    installed = plugin_registry.installed()
    assert installed.by_package["wasi:blobstore"].version == "0.2.0-draft"
    cases = {
        "config.backend: unknown value 'redis'": {"backend": "redis"},
        "config.root: required with backend filesystem": {"backend": "filesystem"},
        "config.root: must be an absolute path": {"backend": "filesystem", "root": "relative/dir"},
        "config.url: only used by backend nats": {"url": "nats://x:4222"},
        "config.url: expected nats://": {"backend": "nats", "url": "http://x"},
        "config.read_only: unknown value 'yes'": {"read_only": "yes"},
        "config.colour: unknown key": {"colour": "blue"},
        "config.buckets: an empty container name": {"buckets": "a,,b"},
    }
    for expected, config in cases.items():
        problems = installed.entry_problems([specs.Grant("wasi", "blobstore", name="media", config=config)])
        assert len(problems) == 1, (config, problems)
        assert problems[0].startswith("hostInterfaces entry wasi:blobstore (name media): "), problems
        assert expected in problems[0], problems
    assert installed.entry_problems([specs.Grant("wasi", "blobstore", config={"backend": "nats"})]) == []


async def test_nats_down_gives_an_error_string_then_recovers(blobstore_wasm: Path,
                                                             persistent_settings: specs.RuntimeSettings,
                                                             tmp_path: Path) -> None:
    with nats_server(tmp_path / "nats") as nats:
        settings = dataclasses.replace(persistent_settings, plugin_host=HostContext(nats_url=nats.url),
                                       request_timeout_s=20)
        server = await serve_with(blobstore_wasm, settings, (specs.Grant("wasi", "blobstore"),), "down-wl")
        try:
            async with aiohttp.ClientSession() as session:
                guest = Guest(session, server.port)
                await guest.ok("/create", c="survivor")
                await guest.ok("/write", b"before", c="survivor", o="o")
                nats.stop()
                started = time.monotonic()
                message = await guest.error("/read", c="survivor", o="o")
                assert "NATS" in message and "unreachable" in message, message
                assert time.monotonic() - started < 10
                nats.start()
                deadline = time.monotonic() + 20
                while True:
                    status, body = await guest.call("/read", c="survivor", o="o")
                    if status == 200 or time.monotonic() > deadline:
                        break
                    await asyncio.sleep(0.5)
                assert (status, body) == (200, b"before")
        finally:
            await server.stop(2)


async def test_a_slow_client_does_not_make_the_host_buffer_the_object(
        persistent_settings: specs.RuntimeSettings) -> None:
    """A guest splicing a 40 MB object to a client that stops reading (the splice build: it
    produces far faster than the client reads): the host's send buffer for the connection stays
    near http1.WRITE_HIGH_WATER (the guest waits), then everything arrives."""
    splicing = build("blobstore-splice-py")
    server = await serve_with(splicing, persistent_settings, (specs.Grant("wasi", "blobstore"),), "slow-wl")
    try:
        async with aiohttp.ClientSession() as session:
            guest = Guest(session, server.port)
            await guest.ok("/create", c="big")
            data = os.urandom(40 << 20)
            await guest.ok("/write-splice", data, c="big", o="o")
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 10)
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        await loop.sock_connect(sock, ("127.0.0.1", server.port))
        await loop.sock_sendall(sock, b"GET /read-splice?c=big&o=o HTTP/1.1\r\nHost: blob.test\r\n"
                                      b"Connection: close\r\n\r\n")
        await asyncio.sleep(3)  # the client reads nothing meanwhile
        assert server._core is not None
        buffered = max(c.transport.get_write_buffer_size() for c in server._core.connections if c.transport)
        assert buffered < 12 << 20, buffered
        received = bytearray()
        while chunk := await loop.sock_recv(sock, 1 << 20):
            received += chunk
        sock.close()
        head, _, body = bytes(received).partition(b"\r\n\r\n")
        assert b"transfer-encoding: chunked" in head
        assert dechunk(body) == data
    finally:
        await server.stop(2)
