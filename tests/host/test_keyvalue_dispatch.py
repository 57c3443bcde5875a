"""Where a wasi:keyvalue guest runs: inline on the worker's event loop when every entry it has keeps its
data in memory (nothing to wait on); suspended on that loop while NATS answers when its entries keep
data in NATS or memory (or leave the backend to the host's default, one of the two); on a wasm thread
when an entry may wait on Redis or a disk, or under a CPU limit (whose throttling sleeps).

A real nats-server, one worker process; the guest is tests/components/kv-getset-wat (store.open,
set, get). Each route answers with the value it stored; the mode is the linker's decision
(`LoadedComponent.suspends` and `may_block`).
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


async def test_in_memory_guests_run_inline_nats_ones_suspended_the_others_on_threads(
        settings: specs.RuntimeSettings, tmp_path: Path) -> None:
    guest = build("kv-getset-wat")
    routes: dict[str, tuple[dict[str, str], str, int]] = {  # config, mode, CPU limit (millicores)
        "memory": ({"backend": "in-memory"}, "inline", 0),
        "default": ({}, "suspended", 0),
        "nats": ({"backend": "nats"}, "suspended", 0),
        "limited": ({"backend": "nats"}, "thread", 500),
        "disk": ({"backend": "filesystem", "root": str(tmp_path / "kv")}, "thread", 0),
    }
    with nats_server(tmp_path / "nats") as bus:
        srv = WasmServer("127.0.0.1", 0, workers=1,
                         settings=dataclasses.replace(settings, plugin_host=HostContext(nats_url=bus.url)))
        await srv.start()
        try:
            for name, (config, _, millicores) in routes.items():
                grant = specs.Grant("wasi", "keyvalue", ("store", "atomics", "batch"), config=config)
                spec = dataclasses.replace(make_spec(guest, name, grants=(grant,)), cpu_limit_millicores=millicores)
                await srv.route(name, [f"{name}.test"], spec)
            for name, (_, mode, _) in routes.items():
                for _ in range(3):  # the first opens the bucket, the others find it opened
                    assert await raw_request(srv.port, host_request(f"{name}.test")) == (200, b"value-0123456789"), name
                assert srv._core is not None
                component = srv._core.routes.by_workload[name].component
                ran = "suspended" if component.suspends else "thread" if component.may_block else "inline"
                assert ran == mode, name
        finally:
            await srv.stop(5)
