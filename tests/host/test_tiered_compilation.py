"""Tiered compilation: Winch code first, Cranelift code swapped in from a background compile.

Checks: with compiler "tiered" and an empty cache a route is served at once from a Winch artefact
(`.winch.cwasm`), the Cranelift artefact is compiled in the background and the route switches to it
(requests answered 200 before, during and after the swap, and counted in the workload's figures
across it, in-process and with worker processes, for the WAT and the JS guest); a component already
compiled with Cranelift is served from it with no Winch step; "cranelift" and "winch" pin one tier
and never tier up; the two tiers have different cache keys and an artefact renamed to the other tier
is refused by wasmtime; unrouting a workload drops its background compile (no tier-up; a queued one
is skipped); a bad WASMFLEET_COMPILER names the variable and the accepted values.
"""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import time
from pathlib import Path

import aiohttp
import pytest
from runtime_harness import build, make_spec, runtime_settings

from wasmfleet.host.runtime import engines, specs, tiering
from wasmfleet.host.runtime.server import WasmServer


def _settings(cache: Path, compiler: str) -> specs.RuntimeSettings:
    base = runtime_settings(cache_dir=cache)
    return dataclasses.replace(base, engine=dataclasses.replace(base.engine, compiler=compiler))


def _tiers(cache: Path) -> set[str]:
    return {engines.tier_of(p) for p in cache.glob("*.cwasm")}


async def _get(port: int) -> tuple[int, str]:
    async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{port}/") as r:
        return r.status, await r.text()


async def _wait_for_tier_up(server: WasmServer, count: int, timeout_s: float = 240.0) -> None:
    deadline = time.monotonic() + timeout_s
    while server.tier_ups < count:
        assert time.monotonic() < deadline, "the optimized code never replaced the baseline code"
        await asyncio.sleep(0.1)


@pytest.mark.parametrize(("guest", "workers", "body"), [
    ("hello-wat", 1, "hello from wat\n"),
    ("hello-wat", 2, "hello from wat\n"),
    ("hello-js", 1, None),
])
async def test_baseline_serves_first_then_optimized_code_takes_over(
    tmp_path: Path, guest: str, workers: int, body: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # At the host's priority: this checks the swap, and a niced compile of the 13 MB guest can
    # starve for minutes on a machine shared with other test runs.
    monkeypatch.setattr(tiering, "NICENESS", 0)
    cache = tmp_path / "cache"
    server = WasmServer("127.0.0.1", 0, workers=workers, settings=_settings(cache, "tiered"))
    await server.start()
    try:
        await server.route("w1", ["*"], make_spec(build(guest)))
        assert _tiers(cache) == {"winch"}
        statuses: list[int] = []
        texts: set[str] = set()

        async def keep_asking() -> None:
            while server.tier_ups < 1:
                status, text = await _get(server.port)
                statuses.append(status)
                texts.add(text)
                await asyncio.sleep(0.02)

        asker = asyncio.create_task(keep_asking())
        await _wait_for_tier_up(server, 1)
        await asker
        for _ in range(5):
            status, text = await _get(server.port)
            statuses.append(status)
            texts.add(text)
        assert _tiers(cache) == {"winch", "cranelift"}
        assert statuses and set(statuses) == {200}
        assert len(texts) == 1 and (body is None or texts == {body})
        stats = await server.stats_async()  # the workload's figures go on across the swap
        assert sum(w["workloads"]["w1"]["requests"] for w in stats["workers"]) == len(statuses)
        if server._core is not None:
            assert server._core.routes.by_workload["w1"].component.tier == "cranelift"
    finally:
        await server.stop(2)


async def test_a_component_compiled_with_cranelift_before_skips_winch(tmp_path: Path, hello_wat: Path) -> None:
    cache = tmp_path / "cache"
    engines.configure(_settings(cache, "cranelift").engine)
    engines.compile_to_cache(hello_wat, cache)
    server = WasmServer("127.0.0.1", 0, workers=1, settings=_settings(cache, "tiered"))
    await server.start()
    try:
        await server.route("w1", ["*"], make_spec(hello_wat))
        assert await _get(server.port) == (200, "hello from wat\n")
        assert _tiers(cache) == {"cranelift"}
        assert server.tier_ups == 0 and not server._tier_ups
    finally:
        await server.stop(2)


@pytest.mark.parametrize("compiler", ["cranelift", "winch"])
async def test_a_pinned_compiler_never_tiers_up(tmp_path: Path, hello_wat: Path, compiler: str) -> None:
    cache = tmp_path / "cache"
    server = WasmServer("127.0.0.1", 0, workers=1, settings=_settings(cache, compiler))
    await server.start()
    try:
        await server.route("w1", ["*"], make_spec(hello_wat))
        assert await _get(server.port) == (200, "hello from wat\n")
        await asyncio.sleep(0.5)
        assert _tiers(cache) == {compiler}
        assert server.tier_ups == 0 and not server._tier_ups
    finally:
        await server.stop(2)


def test_tiers_have_their_own_cache_keys_and_wasmtime_refuses_the_other_tier(
    tmp_path: Path, hello_wat: Path
) -> None:
    engines.configure(_settings(tmp_path, "tiered").engine)
    winch = engines.compile_to_cache(hello_wat, tmp_path, tier="winch")
    cranelift = engines.compile_to_cache(hello_wat, tmp_path, tier="cranelift")
    assert winch != cranelift
    assert (engines.tier_of(winch), engines.tier_of(cranelift)) == ("winch", "cranelift")
    assert engines.load(winch).tier == "winch" and engines.load(cranelift).tier == "cranelift"
    disguised = tmp_path / "disguised.cwasm"  # Winch code under a Cranelift name
    shutil.copy(winch, disguised)
    with pytest.raises(Exception, match="failed to load"):
        engines.load(disguised)


def test_an_unknown_compiler_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match=r"WASMFLEET_COMPILER.*tiered, cranelift, winch.*'turbo'"):
        specs.EngineSettings.from_environment({"WASMFLEET_COMPILER": "turbo"})


async def test_unrouting_drops_the_background_compile(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    server = WasmServer("127.0.0.1", 0, workers=1, settings=_settings(cache, "tiered"))
    await server.start()
    try:
        await server.route("w1", ["*"], make_spec(build("hello-js")))
        await server.route("w2", ["*"], make_spec(build("hello-py")))
        assert set(server._tier_ups) == {"w1", "w2"}
        await server.unroute("w1")
        await server.unroute("w2")  # queued behind w1's compile: skipped
        await asyncio.to_thread(tiering.wait_idle)
        await asyncio.sleep(0.2)
        assert server.tier_ups == 0 and not server._tier_ups and not server.routes()
        py_sha = engines.file_sha256(build("hello-py"))
        assert not engines.artefact_path(cache, py_sha).exists()
    finally:
        await server.stop(2)
