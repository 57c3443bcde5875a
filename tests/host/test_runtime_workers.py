"""Worker processes sharing one port, and graceful stop.

Checks: with workers=2 both processes answer requests on the same port (SO_REUSEPORT) and a
route/unroute reaches every worker before the call returns; a killed worker is restarted with
every current route; stop() lets an in-flight request
finish (bounded by the grace period) and then refuses new connections.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from runtime_harness import host_request, make_spec, raw_request

from wasmfleet.host.runtime import specs
from wasmfleet.host.runtime.server import WasmServer


async def test_two_workers_share_the_port_and_all_get_route_updates(
    settings: specs.RuntimeSettings, hello_wat: Path
) -> None:
    server = WasmServer("127.0.0.1", 0, workers=2, settings=settings)
    await server.start()
    try:
        await server.route("w1", ["multi.test"], make_spec(hello_wat))
        results = await asyncio.gather(*(raw_request(server.port, host_request("multi.test")) for _ in range(60)))
        assert all(status == 200 for status, _ in results)
        per_worker = (await server.stats_async())["workers"]
        counts = [w["workloads"]["w1"]["requests"] for w in per_worker]
        assert sum(counts) == 60
        assert all(c > 0 for c in counts), counts
        await server.unroute("w1")
        results = await asyncio.gather(*(raw_request(server.port, host_request("multi.test")) for _ in range(20)))
        assert all(status == 404 for status, _ in results)
    finally:
        await server.stop(2)
    assert server.stats()["workers_alive"] == 0


async def test_stop_drains_in_flight_requests_then_refuses(settings: specs.RuntimeSettings, hello_wat: Path) -> None:
    server = WasmServer("127.0.0.1", 0, workers=1, settings=settings)
    await server.start()
    await server.route("w1", ["*"], make_spec(hello_wat, request_timeout_s=0.5))
    slow = asyncio.create_task(raw_request(server.port, host_request("x", "/loop")))
    await asyncio.sleep(0.1)
    await server.stop(grace_s=3)
    status, _ = await slow
    assert status == 504  # completed, not cut off
    with pytest.raises(OSError):
        await raw_request(server.port, host_request("x"))


async def test_a_dead_worker_is_restarted_with_its_routes(settings: specs.RuntimeSettings, hello_wat: Path) -> None:
    server = WasmServer("127.0.0.1", 0, workers=2, settings=settings)
    await server.start()
    try:
        await server.route("w1", ["multi.test"], make_spec(hello_wat))
        server._workers[0].process.kill()
        for _ in range(100):
            await asyncio.sleep(0.1)
            if server.restarts == 1 and server.stats()["workers_alive"] == 2:
                break
        assert server.stats()["worker_restarts"] == 1
        results = await asyncio.gather(*(raw_request(server.port, host_request("multi.test")) for _ in range(40)))
        assert all(status == 200 for status, _ in results)
        counts = [w["workloads"]["w1"]["requests"] for w in (await server.stats_async())["workers"]]
        assert all(c > 0 for c in counts), counts
    finally:
        await server.stop(2)
