"""Benchmark of the embedded API server (`wasmfleet apiserver`), not a test.

Creates N Workloads (default 10,000) over HTTPS with concurrent clients, lists them, then measures
watch-event delivery to W concurrent watchers (default 100) while objects are patched, and the server's
RSS. Prints medians and the ratio of each figure to its target (>= 1,000 creates/s, watch p99 < 50 ms,
RSS < 300 MB at 10,000 objects).

    .venv/bin/python bench/apiserver_bench.py [--objects 10000] [--watchers 100] [--updates 300]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import multiprocessing
import os
import ssl
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import psutil
import yaml

from wasmfleet.testing.apiserver import ApiServerProcess

PATH = "/apis/runtime.wasmcloud.dev/v1alpha1/namespaces/default/workloads"
MARK = b'"bench/sent":"'


def endpoint(kubeconfig: Path) -> tuple[str, dict[str, str], str]:
    doc = yaml.safe_load(kubeconfig.read_text())
    cluster = doc["clusters"][0]["cluster"]
    ca = base64.b64decode(cluster["certificate-authority-data"]).decode()
    return cluster["server"], {"Authorization": f"Bearer {doc['users'][0]['user']['token']}"}, ca


def workload(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "runtime.wasmcloud.dev/v1alpha1", "kind": "Workload",
        "metadata": {"name": name, "labels": {"app": "bench", "shard": name[-1]}},
        "spec": {
            "hostSelector": {"hostgroup": "default"},
            "components": [{"name": "http", "image": "ghcr.io/wasmcloud/components/http-hello-world-rust:0.1.0",
                            "poolSize": 2, "localResources": {"environment": {"config": {"LOG": "info"}}}}],
            "hostInterfaces": [{"namespace": "wasi", "package": "http", "interfaces": ["incoming-handler"],
                                "config": {"host": f"{name}.example.com"}}],
        },
    }


def _run(coro: Any) -> Any:
    """Client processes run on uvloop when installed: they share the 2 cores with the server, and the
    cheaper the clients, the more the figures say about the server."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


async def _create_range(url: str, headers: dict[str, str], ca: str, names: list[str], concurrency: int) -> int:
    ctx = ssl.create_default_context(cadata=ca)
    queue = list(reversed(names))
    failures = 0
    json_type = {"Content-Type": "application/json"}

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal failures
        while queue:
            name = queue.pop()
            body = orjson.dumps(workload(name))
            async with session.post(url + PATH, data=body, headers=json_type, ssl=ctx) as resp:
                await resp.read()
                if resp.status != 201:
                    failures += 1

    conn = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(headers=headers, connector=conn) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return failures


def _client_process(args: tuple[str, dict[str, str], str, list[str], int]) -> tuple[int, float]:
    """(failures, this client's CPU seconds)."""
    cpu0 = time.process_time()
    failures: int = _run(_create_range(*args))
    return failures, time.process_time() - cpu0


def create_all(url: str, headers: dict[str, str], ca: str, n: int, procs: int, concurrency: int
               ) -> tuple[float, int, float]:
    """(elapsed seconds, failures, CPU seconds the client processes spent)."""
    names = [f"wl-{i:05d}" for i in range(n)]
    chunks = [names[i::procs] for i in range(procs)]
    started = time.perf_counter()
    with multiprocessing.Pool(procs) as pool:
        results = pool.map(_client_process, [(url, headers, ca, c, concurrency) for c in chunks])
    return time.perf_counter() - started, sum(f for f, _ in results), sum(c for _, c in results)


async def list_times(url: str, headers: dict[str, str], ca: str, rounds: int = 5) -> tuple[list[float], int]:
    ctx = ssl.create_default_context(cadata=ca)
    times = []
    count = 0
    async with aiohttp.ClientSession(headers=headers) as session:
        for _ in range(rounds):
            started = time.perf_counter()
            async with session.get(url + PATH, ssl=ctx) as resp:
                body = await resp.read()
            times.append(time.perf_counter() - started)
            count = len(json.loads(body)["items"])
    return times, count


async def _watchers(url: str, headers: dict[str, str], ca: str, rv: str, watchers: int, updates: int,
                    ready_path: str) -> list[float]:
    ctx = ssl.create_default_context(cadata=ca)
    latencies: list[float] = []
    conn = aiohttp.TCPConnector(limit=watchers + 4)
    async with aiohttp.ClientSession(headers=headers, connector=conn) as session:
        ready = 0

        async def watcher() -> None:
            nonlocal ready
            async with session.get(url + PATH, ssl=ctx, params={"watch": "true", "resourceVersion": rv,
                                                                "timeoutSeconds": "600"}) as resp:
                ready += 1
                if ready == watchers:
                    Path(ready_path).touch()
                got = 0
                async for line in resp.content:
                    now = time.time()
                    # A string search, not json.loads: keep the client's CPU out of the measurement.
                    at = line.index(MARK) + len(MARK)
                    sent = float(line[at:line.index(b'"', at)])
                    latencies.append((now - sent) * 1000)
                    got += 1
                    if got == updates:
                        return

        await asyncio.wait_for(asyncio.gather(*(watcher() for _ in range(watchers))), 300)
    return latencies


def _watcher_process(args: tuple[str, dict[str, str], str, str, int, int, str]) -> list[float]:
    latencies: list[float] = _run(_watchers(*args))
    return latencies


async def _patcher(url: str, headers: dict[str, str], ca: str, updates: int, rate: float) -> None:
    ctx = ssl.create_default_context(cadata=ca)
    async with aiohttp.ClientSession(headers=headers) as session:
        for i in range(updates):
            patch = {"metadata": {"annotations": {"bench/sent": repr(time.time())}}}
            async with session.patch(f"{url}{PATH}/wl-{i:05d}", ssl=ctx, data=json.dumps(patch),
                                     headers={"Content-Type": "application/merge-patch+json"}) as resp:
                await resp.read()
            await asyncio.sleep(1 / rate)


def watch_latency(url: str, headers: dict[str, str], ca: str, watchers: int, updates: int, rate: float,
                  procs: int) -> list[float]:
    """Watchers spread over `procs` client processes (one process cannot parse 100 streams in time)."""
    ctx = ssl.create_default_context(cadata=ca)

    async def current_rv() -> str:
        async with aiohttp.ClientSession(headers=headers) as session, \
                session.get(url + PATH, ssl=ctx, params={"limit": "1"}) as resp:
            return str((await resp.json())["metadata"]["resourceVersion"])

    rv = asyncio.run(current_rv())
    with tempfile.TemporaryDirectory() as tmp, multiprocessing.Pool(procs) as pool:
        flags = [f"{tmp}/ready-{i}" for i in range(procs)]
        shares = [watchers // procs + (1 if i < watchers % procs else 0) for i in range(procs)]
        pending = pool.map_async(_watcher_process, [(url, headers, ca, rv, n, updates, f)
                                                    for n, f in zip(shares, flags, strict=True)])
        while not all(Path(f).exists() for f in flags):
            time.sleep(0.05)
        time.sleep(0.5)
        asyncio.run(_patcher(url, headers, ca, updates, rate))
        return [x for part in pending.get(300) for x in part]


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--objects", type=int, default=10_000)
    ap.add_argument("--watchers", type=int, default=100)
    ap.add_argument("--updates", type=int, default=300)
    ap.add_argument("--rate", type=float, default=100.0, help="updates per second during the watch phase")
    ap.add_argument("--client-procs", type=int, default=2)
    ap.add_argument("--concurrency", type=int, default=32, help="in-flight creates per client process")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="wasmfleet-bench-") as tmp:
        server = ApiServerProcess(Path(tmp) / "api")
        server.start()
        try:
            url, headers, ca = endpoint(server.kubeconfig)
            proc = psutil.Process(server.pid)
            cpu0 = sum(proc.cpu_times()[:2])
            elapsed, failures, cpu_clients = create_all(url, headers, ca, args.objects, args.client_procs,
                                                        args.concurrency)
            cpu_create = sum(proc.cpu_times()[:2]) - cpu0
            creates = args.objects / elapsed
            ltimes, count = asyncio.run(list_times(url, headers, ca))
            lat = watch_latency(url, headers, ca, args.watchers, args.updates, args.rate, args.client_procs)
            rss = proc.memory_info().rss / 1e6
        finally:
            server.stop()
    print(f"objects created          {args.objects} in {elapsed:.2f}s, failures {failures}")
    print(f"creates/s                {creates:8.0f}   (target >= 1000: ratio {creates / 1000:.2f})")
    print(f"list {count} objects      median {statistics.median(ltimes) * 1000:8.1f} ms (min {min(ltimes) * 1000:.1f})")
    print(f"server CPU per create    {cpu_create / args.objects * 1000:8.3f} ms "
          f"(= {args.objects / cpu_create:.0f} creates per server CPU-second)")
    print(f"client CPU per create    {cpu_clients / args.objects * 1000:8.3f} ms "
          f"(the {args.client_procs} client processes share the machine with the server)")
    print(f"machine load average     {os.getloadavg()[0]:8.2f}     (at the end; other work competes for the cores)")
    print(f"watch events delivered   {len(lat)} to {args.watchers} watchers ({args.updates} updates "
          f"at {args.rate:.0f}/s)")
    print(f"watch latency p50        {pct(lat, 0.5):8.2f} ms")
    print(f"watch latency p99        {pct(lat, 0.99):8.2f} ms  (target < 50 ms: ratio {pct(lat, 0.99) / 50:.2f})")
    print(f"server RSS               {rss:8.1f} MB  (target < 300 MB: ratio {rss / 300:.2f})")


if __name__ == "__main__":
    main()
