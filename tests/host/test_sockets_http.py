"""An HTTP component asking a TCP service of its workload over the private loopback.

The service is the sockets-py command guest (`tcp-echo-server`, run through runtime.commands as
a service would be); the HTTP component (tests/components/sockets-http-py) is served by a
WasmServer with two worker processes, so the requests reach it from other processes than the
service's. Checks: every request gets the service's echo whichever worker serves it; the same
component routed as another workload (another loopback directory) gets connection-refused (502).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from runtime_harness import build, host_request, raw_request
from sockets_harness import Workload

from wasmfleet.host.runtime import specs
from wasmfleet.host.runtime.server import WasmServer


@pytest.fixture
async def two_workers(persistent_settings: specs.RuntimeSettings) -> AsyncIterator[WasmServer]:
    srv = WasmServer("127.0.0.1", 0, workers=2, settings=persistent_settings)
    await srv.start()
    yield srv
    await srv.stop(2)


async def test_http_component_talks_to_the_workloads_service(
    two_workers: WasmServer, persistent_settings: specs.RuntimeSettings, tmp_path: Path
) -> None:
    loopback = tmp_path / "wl" / "net"
    requests = 6
    service = Workload(build("sockets-py"), persistent_settings, loopback).start("tcp-echo-server", 7070, requests)
    service.wait_line("listening")
    http_guest = build("sockets-http-py")
    spec = specs.ComponentSpec(workload_id="wl", name="front", wasm_path=http_guest,
                               network=specs.NetworkAccess(loopback))
    other = specs.ComponentSpec(workload_id="other", name="front", wasm_path=http_guest,
                                network=specs.NetworkAccess(tmp_path / "other" / "net"))
    await two_workers.route("wl", ["front.test"], spec)
    await two_workers.route("other", ["other.test"], other)
    for i in range(requests):
        status, body = await raw_request(two_workers.port, host_request("front.test", f"/ask?port=7070&msg=m{i}"),
                                          timeout=60)
        assert (status, body) == (200, f"m{i}".encode())
    status, body = await raw_request(two_workers.port, host_request("other.test", "/ask?port=7070&msg=x"), timeout=60)
    assert (status, body) == (502, b"error: connection-refused")
    assert service.finish()[-1] == "done"
