"""Guests suspended on the worker's event loop while a host call waits (runtime.suspension).

The guest is tests/components/kv-getset-wat (store.open, bucket.set, bucket.get, then 200 with the
value read). Its wasi:keyvalue interfaces are replaced, in this process, by a stand-in plugin whose
functions answer with `Later`s the test controls: the real NATS backend cannot be made to fail in
each of these ways on demand (it is exercised by tests/integration/test_keyvalue_backends.py). The
server is a real WasmServer with one in-process worker, reached over real HTTP.

Checks: a Later answered after the guest suspended gives the guest that value; a Later that fails
makes the guest trap with that cause (500 naming it); a Later never answered is cancelled at the
request's deadline (504) and the instance is not reused; while guests wait, the loop serves others;
many guests wait at once, each resumed with its own answer.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from runtime_harness import build, host_request, make_spec, raw_request

from wasmfleet.host.plugin_api import store_state
from wasmfleet.host.plugin_api.interfaces import Interface, Later, ok
from wasmfleet.host.runtime import hostfuncs, plugin_registry, specs
from wasmfleet.host.runtime.server import WasmServer

pytestmark = pytest.mark.timeout(60)

STORE = "wasi:keyvalue/store"


class StandIn:
    """wasi:keyvalue/store whose get answers with a Later made by `answer` (the test's choice)."""

    def __init__(self) -> None:
        self.answer: Callable[[asyncio.AbstractEventLoop, str], asyncio.Future[Any]] = self.after(0.05)
        self.handed_out: list[asyncio.Future[Any]] = []

    @staticmethod
    def after(delay: float) -> Callable[[asyncio.AbstractEventLoop, str], asyncio.Future[Any]]:
        def make(loop: asyncio.AbstractEventLoop, key: str) -> asyncio.Future[Any]:
            future = loop.create_future()
            loop.call_later(delay, lambda: future.done() or future.set_result(ok(f"later:{key}".encode())))
            return future

        return make

    def get(self, bucket: Any, key: str) -> Later:
        loop = store_state.state().loop
        assert loop is not None, "a suspending interface is called on the guest's loop"
        future = self.answer(loop, key)
        self.handed_out.append(future)
        return Later(future)

    def interface(self, real: Interface) -> Interface:
        functions = {
            "open": lambda identifier: ok(object()),
            "[method]bucket.set": lambda bucket, key, value: ok(),
            "[method]bucket.get": self.get,
        }
        return dataclasses.replace(real, functions=functions, blocking_with=lambda configs: True,
                                   suspends_with=lambda configs: True)


@pytest.fixture
def stand_in(monkeypatch: pytest.MonkeyPatch) -> StandIn:
    interfaces = plugin_registry.installed().interfaces
    stand_in = StandIn()
    monkeypatch.setitem(interfaces, STORE, stand_in.interface(interfaces[STORE]))
    return stand_in


@pytest.fixture
async def server(settings: specs.RuntimeSettings, stand_in: StandIn) -> AsyncIterator[WasmServer]:
    guest = build("kv-getset-wat")
    srv = WasmServer("127.0.0.1", 0, workers=1, settings=settings)
    await srv.start()
    try:
        grant = specs.Grant("wasi", "keyvalue", ("store",), config={"backend": "nats"})
        spec = make_spec(guest, "waits", grants=(grant,), request_timeout_s=1.0)
        await srv.route("waits", ["waits.test"], spec)
        await srv.route("quick", ["quick.test"], make_spec(build("hello-wat"), "quick"))
        assert srv._core is not None and srv._core.routes.by_workload["waits"].component.suspends
        yield srv
    finally:
        await srv.stop(5)


async def test_the_guest_resumes_with_the_later_answer(server: WasmServer, stand_in: StandIn) -> None:
    began = time.monotonic()
    assert await raw_request(server.port, host_request("waits.test")) == (200, b"later:k")
    assert time.monotonic() - began >= 0.05
    assert len(stand_in.handed_out) == 1


async def test_a_failed_later_traps_the_guest_with_its_cause(server: WasmServer, stand_in: StandIn) -> None:
    def failing(loop: asyncio.AbstractEventLoop, key: str) -> asyncio.Future[Any]:
        future = loop.create_future()
        loop.call_later(0.01, future.set_exception, RuntimeError("the backend broke"))
        return future

    stand_in.answer = failing
    status, body = await raw_request(server.port, host_request("waits.test"))
    assert status == 500 and b"RuntimeError: the backend broke" in body, body
    stand_in.answer = stand_in.after(0.01)  # the next request gets a fresh instance and works
    assert await raw_request(server.port, host_request("waits.test")) == (200, b"later:k")


async def test_a_later_never_answered_ends_at_the_deadline_and_the_loop_stays_free(
        server: WasmServer, stand_in: StandIn) -> None:
    stand_in.answer = lambda loop, key: loop.create_future()  # never answered
    began = time.monotonic()
    waiting = asyncio.ensure_future(raw_request(server.port, host_request("waits.test")))
    await asyncio.sleep(0.2)
    for _ in range(10):  # the guest waits without holding the loop
        asked = time.monotonic()
        status, _ = await raw_request(server.port, host_request("quick.test"))
        assert status == 200 and time.monotonic() - asked < 0.5
    status, body = await waiting
    assert status == 504 and b"deadline" in body, body
    assert 0.9 < time.monotonic() - began < 3.0
    assert stand_in.handed_out[-1].cancelled()
    assert server._core is not None
    assert server._core.stats()["workloads"]["waits"]["timeouts"] == 1


async def test_many_guests_wait_at_once_each_with_its_answer(server: WasmServer, stand_in: StandIn) -> None:
    stand_in.answer = stand_in.after(0.3)
    began = time.monotonic()
    results = await asyncio.gather(*(raw_request(server.port, host_request("waits.test")) for _ in range(20)))
    assert results == [(200, b"later:k")] * 20
    # Twenty waits of 0.3 s overlap on one loop: nowhere near 20 x 0.3 s.
    assert time.monotonic() - began < 2.0
    assert server._core is not None
    assert server._core.stats()["workloads"]["waits"]["runs"] == "suspended"
    assert hostfuncs._WAITING == {}  # wasmtime dropped every continuation, and its entry went with it
