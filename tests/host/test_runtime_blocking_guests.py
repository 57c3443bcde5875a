"""Guests that block in a host call run on several wasm threads of one worker (runtime.serving).

Checks, with one worker process and the hand-written WAT guest fetching from a slow upstream
(aiohttp, each answer after SLOW_S) through wasi:http/outgoing-handler: REQUESTS concurrent
requests all succeed and overlap (they finish in well under REQUESTS * SLOW_S); with
`wasm_threads=1` the same requests queue behind each other (at least REQUESTS * SLOW_S): the
thread count is what lets them overlap, not something else. A fresh instance serves each request
(instantiations grow by REQUESTS), so no instance is shared by two calls.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from runtime_harness import make_spec, raw_request

from wasmfleet.host.runtime import specs
from wasmfleet.host.runtime.server import WasmServer

SLOW_S = 0.8
REQUESTS = 4


@pytest.fixture
async def slow_upstream() -> AsyncIterator[int]:
    async def slow(_: web.Request) -> web.Response:
        await asyncio.sleep(SLOW_S)
        return web.Response(text="from upstream")

    app = web.Application()
    app.router.add_get("/up", slow)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port: int = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield port
    await runner.cleanup()


async def timed_batch(settings: specs.RuntimeSettings, guest: Path, upstream: int) -> tuple[float, list[Any]]:
    server = WasmServer("127.0.0.1", 0, workers=1, settings=settings)
    await server.start()
    try:
        grant = (specs.Grant("wasi", "http", ("outgoing-handler",)),)
        await server.route("slow", ["slow.test"], make_spec(guest, "slow", grants=grant, allowed_hosts=("127.0.0.1",)))
        request = (f"GET /out HTTP/1.1\r\nHost: slow.test\r\nX-Target: 127.0.0.1:{upstream}\r\n"
                   "Connection: close\r\n\r\n").encode()
        began = time.monotonic()
        answers = await asyncio.gather(*(raw_request(server.port, request, timeout=30) for _ in range(REQUESTS)))
        elapsed = time.monotonic() - began
        return elapsed, [*answers, await server.stats_async()]
    finally:
        await server.stop(2)


async def test_blocked_guests_overlap_on_several_threads(settings: specs.RuntimeSettings, hello_wat: Path,
                                                         slow_upstream: int) -> None:
    elapsed, results = await timed_batch(settings, hello_wat, slow_upstream)
    answers, stats = results[:-1], results[-1]
    assert answers == [(200, b"from upstream")] * REQUESTS
    # Serial would take REQUESTS * SLOW_S = 3.2 s; overlapping takes about SLOW_S.
    assert elapsed < (REQUESTS - 0.5) * SLOW_S, elapsed
    workload = stats["workers"][0]["workloads"]["slow"]
    assert workload["requests"] == REQUESTS
    assert workload["instantiations"] == 1 + REQUESTS, workload  # the check at route time, then one each


async def test_one_wasm_thread_serialises_them(settings: specs.RuntimeSettings, hello_wat: Path,
                                               slow_upstream: int) -> None:
    elapsed, results = await timed_batch(dataclasses.replace(settings, wasm_threads=1), hello_wat, slow_upstream)
    assert results[:-1] == [(200, b"from upstream")] * REQUESTS
    assert elapsed >= REQUESTS * SLOW_S, elapsed
