"""A long-running host must not grow per request: thousands of fresh-instance calls of the WAT
guest (GET, header echo, body echo) in one process, resident memory measured before and after.

Before the fix this guards, the two handle arguments of every handler call (boxes owned by the
caller of wasmtime_component_func_call) were never freed: about 128 bytes per request, 2.5 MB
per 20,000 requests, 128 MB per million.
"""

from __future__ import annotations

import gc
import os
from pathlib import Path

import psutil
from runtime_harness import make_spec

from wasmfleet.host.runtime import instances, specs
from wasmfleet.host.wasi import http, io


class _Discard:
    def start(self, status: int, headers: list[tuple[str, bytes]]) -> None:
        self.status = status

    def write(self, data: bytes) -> None:
        pass

    def flush(self) -> None:
        pass

    def finish(self) -> None:
        pass


def test_resident_memory_stays_flat_over_many_requests(hello_wat: Path, settings: specs.RuntimeSettings) -> None:
    spec = make_spec(hello_wat)
    loaded = instances.LoadedComponent(spec, settings, instances.prepare_file(spec, settings))
    body = os.urandom(8192)

    def one(path: str) -> None:
        channel = io.Channel()
        if path == "/echo":
            channel.feed(body)
        channel.close()
        sink = _Discard()
        loaded.invoke(http.IncomingRequest("POST", path, "memory.test", [("x-a", b"1")],
                                           io.ChannelInput(channel)), sink)
        assert sink.status == 200

    def batch(n: int) -> None:
        for i in range(n):
            one(("/", "/headers", "/echo")[i % 3])

    process = psutil.Process()
    try:
        batch(3000)  # warm-up: allocator pools, caches and wasmtime's slots reach their size
        before = process.memory_info().rss
        batch(21000)
        grown = process.memory_info().rss - before
    finally:
        loaded.close()
    assert grown < 1 << 20, f"resident memory grew {grown / 1e6:.1f} MB over 21,000 requests"


def test_resident_memory_stays_flat_over_many_loads(hello_wat: Path, settings: specs.RuntimeSettings) -> None:
    """A host links a component again on every workload start (rolling updates, restarts): each
    load's host-function entries must be released with its linker (they held ~120 KB per load)."""
    spec = make_spec(hello_wat)
    artefact = instances.prepare_file(spec, settings)

    def cycle(n: int) -> None:
        for _ in range(n):
            loaded = instances.LoadedComponent(spec, settings, artefact)
            loaded.warm_up()
            loaded.close()
            del loaded
        gc.collect()

    process = psutil.Process()
    cycle(50)
    before = process.memory_info().rss
    cycle(300)
    grown = process.memory_info().rss - before
    assert grown < 4 << 20, f"resident memory grew {grown / 1e6:.1f} MB over 300 loads"
