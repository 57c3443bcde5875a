"""Components linked within a workload, with small WAT components (tests/components/link-*-wat).

Checks:
- The linking rules, on real components (`instances.prepare_workload`): an import is satisfied by
  another component's export of the same interface and version; the roles (http = the first
  component in manifest order exporting incoming-handler, library otherwise) and what each reaches.
  Each refusal is a ComponentError naming the components and the interface: an interface exported
  by two components, a cycle, an import nobody provides, a version that differs only in the patch
  (exact match), and an interface carrying a resource.
- Serving: the HTTP front calls the other component in the same request (1 and 100 calls), with a
  fresh instance set per request, with a warm pool (poolSize), and in two worker processes.
- A linked component's trap fails that request (500), one that runs past the request's deadline
  answers 504, and the next request is served.
- Memory stays flat over 10,000 linked requests, and no store stays registered for the forwarders.
- Library instances (each in stores of its own): none for a request that does not call it; one per
  calling request at poolSize 0 (all of a request's calls reach that one); reused across requests
  at the library's own poolSize (never because the entry is pooled); a trap retires it. A chain
  (front -> pong -> ping-leaf) binds each provider's own providers the same way.
- route() of a spec with peers that was never prepared links it too; unroute forgets every artefact.
- Nothing outlives its route: a library instance released after the route closed is freed, and a
  route cancelled or stopped while its component loads closes that component.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import psutil
import pytest
from runtime_harness import build, host_request, raw_request

from wasmfleet.host.runtime import crossing, instances, specs
from wasmfleet.host.runtime.errors import ComponentError, RuntimeUnavailable
from wasmfleet.host.runtime.server import WasmServer
from wasmfleet.host.wasi import http, io

_BEFORE: set[int] = set()


@pytest.fixture(autouse=True)
def _stores_before() -> None:
    """Stores registered when the test starts belong to earlier tests (an in-process server whose
    stop timed out under load may leave one): each test answers only for its own."""
    _BEFORE.clear()
    _BEFORE.update(crossing._ACTIVE)


def registered() -> dict[int, crossing.LinkedStore]:
    """The linked stores registered since this test started."""
    return {ctx: store for ctx, store in crossing._ACTIVE.items() if ctx not in _BEFORE}


def component(name: str, guest: str, **kw: object) -> specs.ComponentSpec:
    return specs.ComponentSpec(workload_id="linked", name=name, wasm_path=build(guest), **kw)  # type: ignore[arg-type]


def prepare(settings: specs.RuntimeSettings, *members: specs.ComponentSpec) -> instances.PreparedWorkload:
    return instances.prepare_workload(list(members), settings)


def refusal(settings: specs.RuntimeSettings, *members: specs.ComponentSpec) -> str:
    with pytest.raises(ComponentError) as caught:
        prepare(settings, *members)
    text = str(caught.value)
    assert "\n" not in text
    return text


def test_an_import_links_to_the_component_exporting_it(settings: specs.RuntimeSettings) -> None:
    prepared = prepare(settings, component("calc", "link-calc-wat"), component("front", "link-front-wat"),
                       component("other-http", "hello-wat"))
    # HTTP goes to the first component in manifest order exporting incoming-handler.
    assert prepared.http_entry == 1
    calc, front, other = prepared.components
    assert (calc.role, front.role, other.role) == ("library", "http", "library")
    assert front.links == {"wasmfleet:linktest/calc@1.0.0": "calc"}
    assert front.reaches == ["calc"] and calc.reaches == [] and other.reaches == []
    assert calc.exports == ["wasmfleet:linktest/calc@1.0.0"]


def test_an_interface_exported_by_two_components_is_refused(settings: specs.RuntimeSettings) -> None:
    text = refusal(settings, component("a", "link-calc-wat"), component("b", "link-calc-wat"),
                   component("front", "link-front-wat"))
    assert text == ("component b: exports wasmfleet:linktest/calc@1.0.0, which component a also exports "
                    "(an interface may be exported by one component of a workload only)")


def test_a_cycle_is_refused_naming_its_steps(settings: specs.RuntimeSettings) -> None:
    text = refusal(settings, component("ping", "link-ping-wat"), component("pong", "link-pong-wat"))
    assert text.startswith("workload: components import each other in a cycle: ")
    assert "ping imports wasmfleet:linktest/calc@1.0.0 from pong" in text
    assert "pong imports wasmfleet:linktest/ping@1.0.0 from ping" in text


def test_an_import_nobody_provides_is_refused(settings: specs.RuntimeSettings) -> None:
    text = refusal(settings, component("front", "link-front-wat"))
    assert text == ("component front: imports wasmfleet:linktest/calc@1.0.0, which no component of this "
                    "workload exports and this host does not implement")


def test_versions_must_match_exactly(settings: specs.RuntimeSettings) -> None:
    text = refusal(settings, component("calc", "link-calc-wat"), component("user", "link-next-user-wat"))
    assert text == ("component user: imports wasmfleet:linktest/calc@1.0.1, which no component of this workload "
                    "exports and this host does not implement (component calc exports "
                    "wasmfleet:linktest/calc@1.0.0: versions must match exactly)")


def test_resources_do_not_cross_components(settings: specs.RuntimeSettings) -> None:
    text = refusal(settings, component("counters", "link-counters-wat"), component("user", "link-counters-user-wat"))
    assert text.startswith("component user: imports wasmfleet:linktest/counters@1.0.0 from component counters, "
                           "but resources cannot cross components")


def test_a_library_alone_prepares_and_reaches_nothing(settings: specs.RuntimeSettings) -> None:
    prepared = prepare(settings, component("calc", "link-calc-wat"))
    assert prepared.http_entry is None and prepared.components[0].role == "library"


@pytest.fixture(params=[1, 2], ids=["one-process", "two-workers"])
async def linked_server(request: pytest.FixtureRequest,
                        settings: specs.RuntimeSettings) -> AsyncIterator[tuple[WasmServer, int]]:
    srv = WasmServer("127.0.0.1", 0, workers=request.param, settings=settings)
    await srv.start()
    yield srv, request.param
    await srv.stop(2)


async def route_pair(srv: WasmServer, front: specs.ComponentSpec, calc: specs.ComponentSpec) -> None:
    members = [front, calc]
    prepared = await srv.prepare_workload(members)
    assert prepared.http_entry == 0
    await srv.route("linked", ["pair.test"], instances.with_peers(members, 0))


async def get(srv: WasmServer, path: str) -> tuple[int, bytes]:
    return await raw_request(srv.port, host_request("pair.test", path))


@pytest.mark.parametrize("pool_size", [0, 2], ids=["fresh", "pooled"])
async def test_the_front_calls_the_library_in_the_same_request(
    linked_server: tuple[WasmServer, int], pool_size: int
) -> None:
    srv, workers = linked_server
    await route_pair(srv, component("front", "link-front-wat", pool_size=pool_size), component("calc", "link-calc-wat"))
    assert await get(srv, "/") == (200, b"42")       # double(21), computed by the other component
    assert await get(srv, "/0") == (200, b"1")       # no call
    assert await get(srv, "/1") == (200, b"2")
    assert await get(srv, "/h") == (200, b"65535")   # 100 calls, chained
    assert await get(srv, "/l") == (200, b"65535")   # the same steps without crossing
    results = await asyncio.gather(*(get(srv, "/h") for _ in range(20)))
    assert set(results) == {(200, b"65535")}
    stats = await srv.stats_async()
    requests = sum(w["workloads"]["linked"]["requests"] for w in stats["workers"])
    made = sum(w["workloads"]["linked"]["instantiations"] for w in stats["workers"])
    assert requests == 25  # whether or not optimized code replaced the route meanwhile (tier-up)
    if pool_size == 0:
        # One instance set per request, plus the warm-up of each process (a tier-up's warm-up
        # instantiates in the new route's figures, before they continue the old ones).
        assert made == 25 + workers
    else:  # reused: at most the pool (per process), its warm-up, and a tier-up's pool
        assert made <= 2 * workers + workers + 2 * workers


async def test_a_trap_in_the_library_fails_that_request_only(linked_server: tuple[WasmServer, int]) -> None:
    srv, _ = linked_server
    await route_pair(srv, component("front", "link-front-wat", pool_size=1), component("calc", "link-calc-wat"))
    status, body = await get(srv, "/t")  # double(999) traps inside calc
    assert status == 500 and b"unreachable" in body, body
    assert await get(srv, "/1") == (200, b"2")
    stats = await srv.stats_async()
    assert sum(w["workloads"]["linked"]["traps"] for w in stats["workers"]) == 1


async def test_the_deadline_stops_a_linked_component(settings: specs.RuntimeSettings) -> None:
    srv = WasmServer("127.0.0.1", 0, workers=1, settings=settings)
    await srv.start()
    try:
        await route_pair(srv, component("front", "link-front-wat", request_timeout_s=0.3),
                         component("calc", "link-calc-wat"))
        status, body = await get(srv, "/i")  # double(998) loops inside calc
        assert status == 504, body
        assert await get(srv, "/1") == (200, b"2")
    finally:
        await srv.stop(2)


def test_with_peers_keeps_manifest_order(tmp_path: Path) -> None:
    a, b, c = (specs.ComponentSpec(workload_id="w", name=n, wasm_path=tmp_path / n) for n in "abc")
    entry = instances.with_peers([a, b, c], 1)
    assert entry.name == "b" and [p.name for p in entry.peers] == ["a", "c"]
    assert dataclasses.replace(entry, peers=()) == b


def test_memory_stays_flat_over_many_linked_requests(settings: specs.RuntimeSettings) -> None:
    """Every request builds a store with two instances and a table of provider functions, and
    registers it for the forwarders: all of it must be released with the store."""
    members = [component("front", "link-front-wat"), component("calc", "link-calc-wat")]
    prepared = prepare(settings, *members)
    loaded = instances.LoadedComponent(instances.with_peers(members, 0), settings,
                                       prepared.components[0].artefact, plugin_hooks=False)

    class Sink:
        status = 0

        def start(self, status: int, headers: list[tuple[str, bytes]]) -> None:
            self.status = status

        def write(self, data: bytes) -> None:
            pass

        def flush(self) -> None:
            pass

        def finish(self) -> None:
            pass

    def batch(n: int) -> None:
        for i in range(n):
            channel = io.Channel()
            channel.close()
            sink = Sink()
            loaded.invoke(http.IncomingRequest("GET", ("/1", "/h")[i % 2], "m.test", [], io.ChannelInput(channel)),
                          sink)
            assert sink.status == 200

    process = psutil.Process()
    try:
        batch(2000)
        gc.collect()
        before = process.memory_info().rss
        batch(10000)
        gc.collect()
        grown = process.memory_info().rss - before
        assert not registered(), "a store is still registered after its request"
    finally:
        loaded.close()
    assert grown < 1 << 20, f"resident memory grew {grown / 1e6:.1f} MB over 10,000 linked requests"


async def test_route_without_prepare_workload_links_the_peers(settings: specs.RuntimeSettings) -> None:
    """route() of a spec with peers that was never prepared prepares it itself (the path a
    restarted worker or `serve` takes) and links the same way."""
    srv = WasmServer("127.0.0.1", 0, workers=1, settings=settings)
    await srv.start()
    try:
        members = [component("front", "link-front-wat"), component("calc", "link-calc-wat")]
        await srv.route("linked", ["pair.test"], instances.with_peers(members, 0))
        assert await get(srv, "/1") == (200, b"2")
        await srv.unroute("linked")
        assert not srv._prepared
    finally:
        await srv.stop(2)


class _Sink:
    status = 0

    def start(self, status: int, headers: list[tuple[str, bytes]]) -> None:
        self.status = status

    def write(self, data: bytes) -> None:
        pass

    def flush(self) -> None:
        pass

    def finish(self) -> None:
        pass


def _call(loaded: instances.LoadedComponent, path: str) -> int:
    channel = io.Channel()
    channel.close()
    sink = _Sink()
    try:
        loaded.invoke(http.IncomingRequest("GET", path, "pair.test", [], io.ChannelInput(channel)), sink)
    except Exception:
        return 500
    return sink.status


@pytest.mark.parametrize(("front_pool", "calc_pool"), [(0, 0), (2, 0), (0, 2)])
def test_library_instances_follow_the_library_own_pool_size(
        settings: specs.RuntimeSettings, front_pool: int, calc_pool: int) -> None:
    members = [component("front", "link-front-wat", pool_size=front_pool),
               component("calc", "link-calc-wat", pool_size=calc_pool)]
    prepared = prepare(settings, *members)
    loaded = instances.LoadedComponent(instances.with_peers(members, 0), settings,
                                       prepared.components[0].artefact, plugin_hooks=False)
    try:
        loaded.warm_up()
        calc = loaded.members[0]
        assert calc.spec.name == "calc" and calc.instantiations == 1  # checked once at warm-up
        for _ in range(5):
            assert _call(loaded, "/0") == 200  # no call: the library is not instantiated
        assert calc.instantiations == 1
        for _ in range(10):
            assert _call(loaded, "/h") == 200  # 100 calls each, to one instance per request
        if calc_pool == 0:  # fresh per calling request, whether or not the entry is pooled
            assert calc.instantiations == 1 + 10
        else:  # kept warm at the library's own poolSize: the warm-up's instance serves them all
            assert calc.instantiations == 1
            assert _call(loaded, "/t") == 500  # double(999) traps inside calc: that instance retires
            assert _call(loaded, "/1") == 200
            assert calc.instantiations == 2
        assert not registered() or front_pool > 0  # only a pooled entry's idle stores stay registered
    finally:
        loaded.close()
    assert not registered()


def test_a_chain_of_libraries_binds_each_level(settings: specs.RuntimeSettings) -> None:
    members = [component("front", "link-front-wat"), component("pong", "link-pong-wat"),
               component("leaf", "link-ping-leaf-wat", pool_size=1)]
    prepared = prepare(settings, *members)
    assert set(prepared.components[0].reaches) == {"leaf", "pong"}
    loaded = instances.LoadedComponent(instances.with_peers(members, 0), settings,
                                       prepared.components[0].artefact, plugin_hooks=False)
    try:
        loaded.warm_up()
        leaf, pong = sorted(loaded.members, key=lambda m: m.spec.name)
        for _ in range(5):
            channel = io.Channel()
            channel.close()
            sink = _Sink()
            body: list[bytes] = []
            sink.write = body.append  # type: ignore[method-assign]
            loaded.invoke(http.IncomingRequest("GET", "/", "pair.test", [], io.ChannelInput(channel)), sink)
            assert (sink.status, b"".join(body)) == (200, b"63")  # double(21) = pong: ping(21) = leaf: 21 * 3
        assert pong.instantiations == 1 + 5 and leaf.instantiations == 1  # fresh / warm at its poolSize
    finally:
        loaded.close()
    assert not registered()


def test_a_library_instance_released_after_its_route_closed_is_freed(settings: specs.RuntimeSettings) -> None:
    """A call in flight when its route is replaced (a tier-up, a new version) releases its library
    instance after the route closed: it is freed, not parked in a pool nothing will close."""
    members = [component("front", "link-front-wat"), component("calc", "link-calc-wat", pool_size=2)]
    prepared = prepare(settings, *members)
    loaded = instances.LoadedComponent(instances.with_peers(members, 0), settings,
                                       prepared.components[0].artefact, plugin_hooks=False)
    loaded.warm_up()
    calc = loaded.members[0]
    in_flight = calc.acquire(time.monotonic() + 5)
    loaded.close()
    calc.release(in_flight, True)
    assert not calc.pool and in_flight.store == 0


async def test_a_route_cancelled_or_stopped_while_loading_frees_its_instances(
        settings: specs.RuntimeSettings, monkeypatch: pytest.MonkeyPatch) -> None:
    """A route whose caller goes away while its component loads on a thread (a tier-up cancelled
    by stop, a route replaced) closes that component when the thread ends: before, it was dropped
    with its warm instances, and a linked one's stayed registered for the forwarders. The warm-up
    is held on an event to make the race deterministic; everything else is real."""
    loading, resume = threading.Event(), threading.Event()
    real_warm_up = instances.LoadedComponent.warm_up

    def held_warm_up(self: instances.LoadedComponent) -> None:
        real_warm_up(self)
        loading.set()
        resume.wait(10)

    monkeypatch.setattr(instances.LoadedComponent, "warm_up", held_warm_up)
    members = [component("front", "link-front-wat", pool_size=2), component("calc", "link-calc-wat")]
    srv = WasmServer("127.0.0.1", 0, workers=1, settings=settings)
    await srv.start()
    try:
        await srv.prepare_workload(members)  # checks by instantiating once, also through warm_up
        loading.clear()
        resume.clear()
        routing = asyncio.create_task(srv.route("linked", ["pair.test"], instances.with_peers(members, 0)))
        assert await asyncio.to_thread(loading.wait, 10)
        assert registered()  # the pooled front's warm instance, registered for its calls
        routing.cancel()
        resume.set()
        with pytest.raises(asyncio.CancelledError):
            await routing
        await _until_no_store_registered()

        loading.clear()
        resume.clear()
        routing = asyncio.create_task(srv.route("linked", ["pair.test"], instances.with_peers(members, 0)))
        assert await asyncio.to_thread(loading.wait, 10)
        await srv.stop(2)
        resume.set()
        with pytest.raises(RuntimeUnavailable, match="stopping"):
            await routing
        assert not registered()
    finally:
        resume.set()
        await srv.stop(2)


async def _until_no_store_registered() -> None:
    for _ in range(200):
        if not registered():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"stores still registered: {registered()}")
