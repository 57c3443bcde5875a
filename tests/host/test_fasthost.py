"""The C host-call entry (host/runtime/_fasthost.c) and the byte-list paths it converts.

`scripts/test` runs tests/host a second time with WASMFLEET_FASTHOST=0, so every host test also
covers the pure-Python trampoline; these tests check byte patterns at the edges of the C code's
8-byte blocks and the latin-1 conversions, through real guests (WAT: blocking-read and
blocking-write-and-flush; JavaScript: read and write), whichever path is active.
"""

from __future__ import annotations

import os
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import aiohttp
import pytest
from runtime_harness import build, make_spec

from wasmfleet.host.runtime import engines, fasthost, hostfuncs, specs
from wasmfleet.host.runtime.server import WasmServer

pytestmark = pytest.mark.timeout(600)


def test_the_c_entry_is_used_when_it_could_be_built(persistent_settings: specs.RuntimeSettings) -> None:
    """Built by `pip install` whenever a C compiler exists; WASMFLEET_FASTHOST=0 (read by the CLI and
    these tests' fixtures into EngineSettings, never at import time) selects the pure-Python path.
    scripts/test sets WASMFLEET_REQUIRE_FASTHOST=1 when it has a compiler, so CI fails (instead of
    quietly testing only the slow path) when the extension did not build."""
    fast = persistent_settings.engine.fast_host_calls
    assert fast == (os.environ.get("WASMFLEET_FASTHOST") != "0")
    if fasthost.MODULE is None:
        if os.environ.get("WASMFLEET_REQUIRE_FASTHOST") == "1":
            pytest.fail("WASMFLEET_REQUIRE_FASTHOST=1 but wasmfleet.host.runtime._fasthost is not built: "
                        "see the output of `pip install -e .` (it compiles _fasthost.c)")
        pytest.skip("the C host-call entry (_fasthost) is not built here (no C compiler when wasmfleet was "
                    "installed): only the pure-Python trampoline is tested")
    assert fasthost.trampoline_address() > 0
    assert hostfuncs.uses_c_entry(fast) == fast


def _patterns() -> dict[str, bytes]:
    every_byte = bytes(range(256))
    return {
        "empty": b"",
        "one-high": b"\xff",
        "one-ascii": b"a",
        "all-values": every_byte,
        "all-values-reversed": every_byte[::-1],
        # A high byte at each position of an 8-byte block, and at block ends.
        **{f"high-at-{i}": b"a" * i + b"\xc3" + b"b" * (15 - i) for i in range(16)},
        "ascii-run-then-high": b"x" * 64 + b"\x80\xbf\xc0\xc2\xc3\xff" + b"y" * 9,
        "all-high": bytes(range(128, 256)) * 40,
        "larger-than-a-read": (every_byte * 64)[:12_345],
    }


PATTERNS = _patterns()


@pytest.fixture(scope="module")
def js_guest(persistent_settings: specs.RuntimeSettings) -> Future[Path]:
    def build_and_compile() -> Path:
        path = build("hello-js")
        engines.compile_to_cache(path, persistent_settings.cache_dir)
        return path

    pool = ThreadPoolExecutor(1)
    future = pool.submit(build_and_compile)
    pool.shutdown(wait=False)
    return future


async def _echo_all(server: WasmServer) -> None:
    async with aiohttp.ClientSession() as s:
        for name, payload in PATTERNS.items():
            async with s.post(f"http://127.0.0.1:{server.port}/echo", data=payload,
                              headers={"Host": "echo.test"}) as r:
                assert r.status == 200, name
                assert await r.read() == payload, name


async def test_wat_guest_echoes_every_byte_pattern(server: WasmServer, hello_wat: Path) -> None:
    await server.route("w1", ["echo.test"], make_spec(hello_wat))
    await _echo_all(server)


async def test_js_guest_echoes_every_byte_pattern(
    js_guest: Future[Path], persistent_settings: specs.RuntimeSettings
) -> None:
    srv = WasmServer("127.0.0.1", 0, workers=1, settings=persistent_settings)
    await srv.start()
    try:
        await srv.route("w1", ["echo.test"], make_spec(js_guest.result(), "w1"))
        await _echo_all(srv)
    finally:
        await srv.stop(2)
