"""The componentize-py and componentize-js guests over real HTTP (CPython / StarlingMonkey in wasm).

Checks, for each guest: GET body; status code and custom header; request headers reach the guest;
a 1 MB POST echoed byte-exact; outgoing HTTP to a local server when wasi:http/outgoing-handler is
granted and the host is allowed; refused (guest sees HTTP-request-denied) for a host outside
allowedHosts; a trap (500) when outgoing-handler is not granted; an uncaught exception (500); an
infinite loop (504); a memory bomb under a memory limit (500). For the Python guest, poolSize
reuses one warm instance (its counter keeps counting), while the default gives a fresh instance.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import aiohttp
import pytest
from runtime_harness import build, host_request, make_spec, raw_request

from wasmfleet.host.runtime import engines, specs
from wasmfleet.host.runtime.server import WasmServer

pytestmark = pytest.mark.timeout(600)

GUESTS = ["hello-py", "hello-js"]
OUTGOING = (specs.Grant("wasi", "http", ("outgoing-handler",)),)


@pytest.fixture(scope="module")
def prebuilt(persistent_settings: specs.RuntimeSettings) -> dict[str, Future[Path]]:
    """Builds and compiles both guests in parallel (on a fresh clone each takes 30-90 s)."""

    def build_and_compile(name: str) -> Path:
        path = build(name)
        engines.compile_to_cache(path, persistent_settings.cache_dir)
        return path

    pool = ThreadPoolExecutor(len(GUESTS))
    futures = {name: pool.submit(build_and_compile, name) for name in GUESTS}
    pool.shutdown(wait=False)
    return futures


@pytest.fixture(scope="module", params=GUESTS)
def guest(request: pytest.FixtureRequest, prebuilt: dict[str, Future[Path]]) -> tuple[str, Path]:
    return request.param, prebuilt[request.param].result()


@pytest.fixture
async def guest_server(
    guest: tuple[str, Path], persistent_settings: specs.RuntimeSettings
) -> AsyncIterator[WasmServer]:
    _, path = guest
    srv = WasmServer("127.0.0.1", 0, workers=1, settings=persistent_settings)
    await srv.start()
    await srv.route("plain", ["plain.test"], make_spec(path, "plain"))
    await srv.route("fetch", ["fetch.test"], make_spec(path, "fetch", grants=OUTGOING, allowed_hosts=("127.0.0.1",)))
    await srv.route("denied", ["denied.test"], make_spec(path, "denied", grants=OUTGOING,
                                                           allowed_hosts=("*.example.com",)))
    await srv.route("limits", ["limits.test"], make_spec(path, "limits", request_timeout_s=1.0, memory_limit_mb=160))
    yield srv
    await srv.stop(2)


async def call(server: WasmServer, host: str, path: str) -> tuple[int, bytes]:
    return await raw_request(server.port, host_request(host, path), timeout=30)


async def test_get_status_and_headers(guest_server: WasmServer) -> None:
    status, body = await call(guest_server, "plain.test", "/")
    assert status == 200
    assert body.startswith(b"hello from ")
    async with aiohttp.ClientSession() as s:
        base = f"http://127.0.0.1:{guest_server.port}"
        async with s.get(f"{base}/status", headers={"Host": "plain.test"}) as r:
            assert r.status == 201
            assert r.headers["x-status"] == "created"
        async with s.get(f"{base}/headers", headers={"Host": "plain.test", "X-Probe": "42"}) as r:
            assert r.status == 200
            assert r.headers["x-probe"] == "42"


async def test_one_megabyte_post_is_echoed_byte_exact(guest_server: WasmServer) -> None:
    payload = os.urandom(1 << 20)
    async with aiohttp.ClientSession() as s, s.post(
        f"http://127.0.0.1:{guest_server.port}/echo", data=payload, headers={"Host": "plain.test"}
    ) as r:
        assert r.status == 200
        assert await r.read() == payload


async def test_outgoing_http_is_granted_checked_and_denied(guest_server: WasmServer, upstream: int) -> None:
    target = f"/fetch?url=http://127.0.0.1:{upstream}/up"
    status, body = await call(guest_server, "fetch.test", target)
    assert (status, body) == (200, b"200 from upstream")
    status, body = await call(guest_server, "denied.test", target)
    assert status == 502
    assert b"fetch failed" in body
    status, body = await call(guest_server, "plain.test", target)
    assert status == 500


async def test_trap_loop_and_memory_bomb_fail_cleanly(guest_server: WasmServer) -> None:
    assert (await call(guest_server, "limits.test", "/trap"))[0] == 500
    assert (await call(guest_server, "limits.test", "/loop"))[0] == 504
    assert (await call(guest_server, "limits.test", "/bomb"))[0] == 500
    assert (await call(guest_server, "limits.test", "/"))[0] == 200


async def test_python_guest_pool_reuses_a_warm_instance(
    persistent_settings: specs.RuntimeSettings, prebuilt: dict[str, Future[Path]]
) -> None:
    path = prebuilt["hello-py"].result()
    srv = WasmServer("127.0.0.1", 0, workers=1, settings=persistent_settings)
    await srv.start()
    try:
        await srv.route("pooled", ["pool.test"], make_spec(path, "pooled", pool_size=1))
        await srv.route("fresh", ["fresh.test"], make_spec(path, "fresh"))
        counts = [(await call(srv, "pool.test", "/count"))[1] for _ in range(3)]
        assert counts == [b"1", b"2", b"3"]
        fresh = [(await call(srv, "fresh.test", "/count"))[1] for _ in range(2)]
        assert fresh == [b"1", b"1"]
    finally:
        await srv.stop(2)
