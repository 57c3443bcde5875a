"""Where a wasi:keyvalue guest runs: on the worker's event loop when every entry it has keeps its data in
memory (nothing to wait on), on a wasm thread when an entry may wait on NATS, Redis or a disk, or
leaves the backend to the host's default (which is not known when the component is planned).

A real nats-server, one worker process; the guest is tests/components/kv-getset-wat (store.open,
set, get). Each route answers with the value it stored; `may_block` is the linker's decision.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from runtime_harness import build, host_request, make_spec, raw_request

from wasmfleet.host.plugin_api.host_plugins import HostContext
from wasmfleet.host.runtime import specs
from wasmfleet.host.runtime.server import WasmServer
from wasmfleet.testing.nats import nats_server

pytestmark = pytest.mark.timeout(120)


async def test_in_memory_guests_run_inline_the_others_on_threads(settings: specs.RuntimeSettings,
                                                                 tmp_path: Path) -> None:
    guest = build("kv-getset-wat")
    routes = {
        "memory": ({"backend": "in-memory"}, False),
        "default": ({}, True),
        "nats": ({"backend": "nats"}, True),
        "disk": ({"backend": "filesystem", "root": str(tmp_path / "kv")}, True),
    }
    with nats_server(tmp_path / "nats") as bus:
        srv = WasmServer("127.0.0.1", 0, workers=1,
                         settings=dataclasses.replace(settings, plugin_host=HostContext(nats_url=bus.url)))
        await srv.start()
        try:
            for name, (config, _) in routes.items():
                grant = specs.Grant("wasi", "keyvalue", ("store", "atomics", "batch"), config=config)
                await srv.route(name, [f"{name}.test"], make_spec(guest, name, grants=(grant,)))
            for name, (_, blocks) in routes.items():
                assert await raw_request(srv.port, host_request(f"{name}.test")) == (200, b"value-0123456789"), name
                assert srv._core is not None
                assert srv._core.routes.by_workload[name].component.may_block is blocks, name
        finally:
            await srv.stop(5)
