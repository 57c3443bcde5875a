"""Fixtures for the runtime tests: guests built from tests/components, servers on free ports."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from runtime_harness import build, runtime_settings

from wasmfleet.host.runtime import specs
from wasmfleet.host.runtime.server import WasmServer


@pytest.fixture(scope="session")
def hello_wat() -> Path:
    return build("hello-wat")


@pytest.fixture(scope="session")
def runtime_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("component-cache")


@pytest.fixture(scope="session")
def persistent_settings() -> specs.RuntimeSettings:
    """Settings whose compiled-component cache survives test runs (big guests compile in ~20 s)."""
    default = Path(__file__).resolve().parents[2] / ".cache" / "runtime-test-components"
    return runtime_settings(cache_dir=Path(os.environ.get("WASMFLEET_RUNTIME_TEST_CACHE", default)))


@pytest.fixture
def settings(runtime_cache: Path) -> specs.RuntimeSettings:
    return runtime_settings(cache_dir=runtime_cache)


@pytest.fixture
async def upstream() -> AsyncIterator[int]:
    """A plain HTTP server (aiohttp) for outgoing requests: GET /up -> 200 "from upstream"."""

    async def hello(_: web.Request) -> web.Response:
        return web.Response(text="from upstream")

    app = web.Application()
    app.router.add_get("/up", hello)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port: int = runner.addresses[0][1]
    yield port
    await runner.cleanup()


@pytest.fixture
async def server(settings: specs.RuntimeSettings) -> AsyncIterator[WasmServer]:
    srv = WasmServer("127.0.0.1", 0, workers=1, settings=settings)
    await srv.start()
    yield srv
    await srv.stop(2)
