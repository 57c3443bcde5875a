"""Limits and instance reuse, with the WAT guest over real HTTP.

Checks: a guest trap answers 500 and the server keeps serving; an infinite loop is stopped by the
epoch deadline and answers 504 within about the configured timeout, also under a CPU quota, which
holds the looping guest back (throttled time counted); a memory bomb hits the
per-instance memory limit and answers 500; ungranted imports (outgoing HTTP) fail only the call
(500) while the component still instantiates, and wasi:sockets, granted to all, answers; fresh
instance per request by default; poolSize keeps warm instances (few instantiations for many
requests); maxInvocations retires an instance after N calls; a trap retires a pooled instance.
"""

from __future__ import annotations

import time
from pathlib import Path

from runtime_harness import host_request, make_spec, raw_request

from wasmfleet.host.runtime.server import WasmServer


async def get(server: WasmServer, path: str) -> tuple[int, bytes]:
    return await raw_request(server.port, host_request("limits.test", path))


def workload_stats(server: WasmServer, wid: str = "w1") -> dict[str, int]:
    stats: dict[str, int] = server.stats()["serving"]["workloads"][wid]
    return stats


async def test_trap_is_500_and_the_server_keeps_serving(server: WasmServer, hello_wat: Path) -> None:
    await server.route("w1", ["*"], make_spec(hello_wat))
    status, body = await get(server, "/trap")
    assert status == 500
    assert b"unreachable" in body
    assert (await get(server, "/"))[0] == 200
    assert workload_stats(server)["traps"] == 1


async def test_infinite_loop_hits_the_deadline_and_is_504(server: WasmServer, hello_wat: Path) -> None:
    await server.route("w1", ["*"], make_spec(hello_wat, request_timeout_s=0.3))
    started = time.monotonic()
    status, body = await get(server, "/loop")
    elapsed = time.monotonic() - started
    assert status == 504
    assert b"deadline" in body
    assert 0.25 < elapsed < 2.0
    assert (await get(server, "/"))[0] == 200


async def test_a_cpu_limit_throttles_a_looping_guest_until_its_deadline(server: WasmServer, hello_wat: Path) -> None:
    """cpuLimit 100 millicores: the guest spins for its 1 s deadline but runs a tenth of each 100 ms
    period and sleeps the rest, and the request still ends at its deadline (504)."""
    await server.route("w1", ["*"], make_spec(hello_wat, request_timeout_s=1.0, cpu_limit_millicores=100))
    started = time.monotonic()
    status, body = await get(server, "/loop")
    elapsed = time.monotonic() - started
    assert status == 504 and b"deadline" in body
    assert 0.9 < elapsed < 3.0
    throttled = server.stats()["serving"]["workloads"]["w1"]["throttled_seconds"]
    assert 0.3 < throttled <= elapsed, throttled
    assert (await get(server, "/"))[0] == 200


async def test_memory_bomb_hits_the_memory_limit_and_is_500(server: WasmServer, hello_wat: Path) -> None:
    await server.route("w1", ["*"], make_spec(hello_wat, memory_limit_mb=16))
    status, _ = await get(server, "/memory")
    assert status == 500
    assert (await get(server, "/"))[0] == 200


async def test_ungranted_import_fails_only_the_call(server: WasmServer, hello_wat: Path) -> None:
    await server.route("w1", ["*"], make_spec(hello_wat))
    # wasi:http/outgoing-handler needs a grant.
    request = b"GET /out HTTP/1.1\r\nHost: limits.test\r\nX-Target: 127.0.0.1:9\r\nConnection: close\r\n\r\n"
    status, body = await raw_request(server.port, request)
    assert status == 500
    assert b"not granted" in body
    # Granted-by-default WASI (wasi:random, wasi:sockets) works in the same component.
    assert await get(server, "/random") == (200, b"random ok\n")
    assert (await get(server, "/network"))[0] == 200


async def test_pool_size_reuses_warm_instances(server: WasmServer, hello_wat: Path) -> None:
    await server.route("w1", ["*"], make_spec(hello_wat, pool_size=2))
    for _ in range(10):
        assert (await get(server, "/"))[0] == 200
    stats = workload_stats(server)
    assert stats["requests"] == 10
    assert stats["instantiations"] == 1  # requests are sequential: one warm instance suffices
    assert stats["warm"] == 1


async def test_max_invocations_retires_instances(server: WasmServer, hello_wat: Path) -> None:
    await server.route("w1", ["*"], make_spec(hello_wat, pool_size=1, max_invocations=3))
    for _ in range(9):
        assert (await get(server, "/"))[0] == 200
    assert workload_stats(server)["instantiations"] == 3


async def test_trap_retires_a_pooled_instance(server: WasmServer, hello_wat: Path) -> None:
    await server.route("w1", ["*"], make_spec(hello_wat, pool_size=1))
    assert (await get(server, "/"))[0] == 200
    assert (await get(server, "/trap"))[0] == 500
    assert (await get(server, "/"))[0] == 200
    assert workload_stats(server)["instantiations"] == 2
