"""Benchmark: the cost of a call between two linked components of a workload.

    .venv/bin/python bench/linking_bench.py [--duration 5] [--runs 3] [--only wat,js]

One serving process (WasmServer, workers=1, a fresh instance set per request) and wrk -t1 -c4
against each path, the paths interleaved run by run; each figure is the median of `--runs` runs.
With one process a request holds the process for its whole run, so the time per request is
1 / (req/s), and the cost of one crossing is the difference between two paths divided by the
number of calls that differ.

- WAT pair (tests/components/link-front-wat calling link-calc-wat's `double`): the crossing itself
  (host forwarder, epoch check, two instances' ABI) against the same step done inside the front:
    /0 no call | /1 one call | /h 100 calls | /l the same 100 steps without crossing
- JS front + Python library (text-front-js calling text-lib-py through wasmfleet:demo/text):
    /  no call | /cross?n=1 | /cross?n=100 (100 calls of rotate(s, 1))
    /inside?n=100 (one call of rotate(s, 100): the same work inside the library)
    /local?n=100 (the same work in JavaScript, no call)
Prints req/s per path and the per-call cost in microseconds, with the ratios against the
same work done inside one component. Needs wrk (scripts/deps.d/components.sh installs it).
The library is instantiated on the request's first call into it, fresh per request by default
(poolSize 0); the JS pair runs a second time with the library at poolSize `--lib-pool` (its
instances kept warm across requests, the library's own opt-in, as upstream), in the same run.

Then, in-process and measured in CPU time of the calling thread (steadier than wall time on a
busy machine): the same WAT paths invoked directly (no HTTP), with the instance set reused
(poolSize 1) so neither HTTP nor instantiation is in the figure, best of 5 blocks.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import re
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "components"))
import build as guests  # noqa: E402

from wasmfleet.host.runtime import instances, specs  # noqa: E402
from wasmfleet.host.runtime.server import WasmServer  # noqa: E402
from wasmfleet.host.wasi import http, io  # noqa: E402

CACHE = REPO / ".cache" / "bench-runtime"


async def wrk(port: int, path: str, duration: float) -> float:
    proc = await asyncio.create_subprocess_exec(
        "wrk", "-t1", "-c4", f"-d{int(duration)}s", "-H", "Host: bench", f"http://127.0.0.1:{port}{path}",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, _ = await proc.communicate()
    text = out.decode()
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if errors:
        raise SystemExit(f"{path}: {errors.group(1)} non-2xx responses")
    found = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if not found:
        raise SystemExit(f"wrk failed on {path}:\n{text}")
    return float(found.group(1))


async def measure(members: list[specs.ComponentSpec], paths: list[str], duration: float,
                  runs: int) -> dict[str, float]:
    settings = specs.RuntimeSettings(cache_dir=CACHE, engine=specs.EngineSettings.from_environment(os.environ))
    server = WasmServer("127.0.0.1", 0, workers=1, settings=settings)
    await server.start()
    try:
        prepared = await server.prepare_workload(members)
        assert prepared.http_entry is not None
        await server.route("bench", ["bench"], instances.with_peers(members, prepared.http_entry))
        for path in paths:
            await wrk(server.port, path, 1)  # warm-up
        # Paths interleaved run by run: a change in the machine's load hits every path alike.
        samples: dict[str, list[float]] = {path: [] for path in paths}
        for _ in range(runs):
            for path in paths:
                samples[path].append(await wrk(server.port, path, duration))
        results = {path: statistics.median(values) for path, values in samples.items()}
        for path, rate in results.items():
            spread = f"{min(samples[path]):,.0f}-{max(samples[path]):,.0f}"
            print(f"    {path:<16} {rate:>9,.0f} req/s  ({1e6 / rate:,.1f} us/request; runs {spread})", flush=True)
        return results
    finally:
        await server.stop(2)


class _Discard:
    status = 0

    def start(self, status: int, headers: list[tuple[str, bytes]]) -> None:
        self.status = status

    def write(self, data: bytes) -> None:
        pass

    def flush(self) -> None:
        pass

    def finish(self) -> None:
        pass


def in_process_ns(paths: list[str], iterations: int = 2000, blocks: int = 5,
                  members: list[specs.ComponentSpec] | None = None) -> dict[str, float]:
    """CPU ns per invocation of each path (no HTTP): by default the linked WAT pair reused (no
    instantiation either); or `members` as given (entry first), instantiated as they ask."""
    settings = specs.RuntimeSettings(cache_dir=CACHE, engine=specs.EngineSettings.from_environment(os.environ))
    if members is None:
        # Both pooled: a library keeps warm instances only at its own poolSize.
        members = [dataclasses.replace(spec("front", "link-front-wat"), pool_size=1),
                   dataclasses.replace(spec("calc", "link-calc-wat"), pool_size=1)]
    prepared = instances.prepare_workload(members, settings)
    loaded = instances.LoadedComponent(instances.with_peers(members, 0), settings, prepared.components[0].artefact,
                                       plugin_hooks=False)
    loaded.warm_up()

    def once(path: str) -> None:
        channel = io.Channel()
        channel.close()
        sink = _Discard()
        loaded.invoke(http.IncomingRequest("GET", path, "bench", [], io.ChannelInput(channel)), sink)
        assert sink.status == 200

    best = {path: float("inf") for path in paths}
    try:
        for _ in range(blocks):
            for path in paths:
                started = time.thread_time_ns()
                for _ in range(iterations):
                    once(path)
                best[path] = min(best[path], (time.thread_time_ns() - started) / iterations)
    finally:
        loaded.close()
    return best


def per_call_us(rps: dict[str, float], more: str, less: str, calls: int) -> float:
    return (1 / rps[more] - 1 / rps[less]) / calls * 1e6


def spec(name: str, guest: str) -> specs.ComponentSpec:
    return specs.ComponentSpec(workload_id="bench", name=name, wasm_path=guests.build_component(guest))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", default="wat,js")
    parser.add_argument("--lib-pool", type=int, default=4, help="poolSize of the library in the second JS run")
    args = parser.parse_args()
    only = set(args.only.split(","))
    if "wat" in only:
        print("WAT front -> WAT library (double), fresh instance set per request:")
        rps = await measure([spec("front", "link-front-wat"), spec("calc", "link-calc-wat")],
                            ["/0", "/1", "/h", "/l"], args.duration, args.runs)
        cross = per_call_us(rps, "/h", "/l", 100)
        print(f"  one crossing call: {cross:.2f} us ({cross * 1000:,.0f} ns); the same step inside the front: "
              f"{per_call_us(rps, '/l', '/0', 100) * 1000:,.0f} ns (noise level)")
        print(f"  first call in a request: {per_call_us(rps, '/1', '/0', 1):.1f} us; "
              f"req/s with 1 call: {rps['/1']:,.0f}, with 100 calls: {rps['/h']:,.0f} "
              f"({rps['/h'] / rps['/1']:.2f}x of 1 call)")
    if "wat" in only:
        print("WAT pair in-process (CPU time per invocation, instance set reused, no HTTP):")
        ns = in_process_ns(["/0", "/1", "/h", "/l"])
        for path, value in ns.items():
            print(f"    {path:<16} {value / 1000:>9,.2f} us")
        crossing = (ns["/h"] - ns["/l"]) / 100
        local = (ns["/l"] - ns["/0"]) / 100
        print(f"  one crossing call: {crossing:,.0f} ns; the same step inside the front: {local:,.1f} ns; "
              f"a request making 1 call costs {ns['/1'] / ns['/0']:.2f}x one making none, "
              f"100 calls {ns['/h'] / ns['/0']:.2f}x")
    if "js" in only:
        paths = ["/", "/cross?n=1", "/cross?n=100", "/inside?n=100", "/local?n=100"]
        for pool in (0, args.lib_pool):
            print(f"JS front (componentize-js) -> Python library (componentize-py, poolSize {pool}), "
                  "fresh front per request:")
            library = dataclasses.replace(spec("text", "text-lib-py"), pool_size=pool)
            rps = await measure([spec("front", "text-front-js"), library], paths, args.duration, args.runs)
            cross = per_call_us(rps, "/cross?n=100", "/inside?n=100", 99)
            print(f"  one crossing call (rotate, JS -> Python): {cross:.1f} us; 100 rotations in one call: "
                  f"{per_call_us(rps, '/inside?n=100', '/', 1):.0f} us; in JS without a call: "
                  f"{per_call_us(rps, '/local?n=100', '/', 1):.0f} us")
            print(f"  req/s with 1 call: {rps['/cross?n=1']:,.0f}, with 100 calls: {rps['/cross?n=100']:,.0f}, "
                  f"same work in 1 call: {rps['/inside?n=100']:,.0f} "
                  f"(100 calls = {rps['/cross?n=100'] / rps['/inside?n=100']:.2f}x of the single call's rate); "
                  f"front alone: {rps['/']:,.0f}")
        print("JS pair in-process (CPU time per request, no HTTP; fresh front per request, best of 5 blocks):")
        cpu: dict[int, dict[str, float]] = {}
        for pool in (0, args.lib_pool):
            members = [spec("front", "text-front-js"), dataclasses.replace(spec("text", "text-lib-py"), pool_size=pool)]
            cpu[pool] = in_process_ns(paths[:3], iterations=40, members=members)
        print(f"    {'path':<16} {'library poolSize 0':>20} {f'poolSize {args.lib_pool}':>14}")
        for path in paths[:3]:
            print(f"    {path:<16} {cpu[0][path] / 1e6:>17,.2f} ms {cpu[args.lib_pool][path] / 1e6:>11,.2f} ms "
                  f"(= {1e9 / cpu[0][path]:,.0f} / {1e9 / cpu[args.lib_pool][path]:,.0f} req/s of one core)")

if __name__ == "__main__":
    asyncio.run(main())
