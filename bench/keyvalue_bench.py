"""Benchmark of wasi:keyvalue on the NATS backend, not a test.

One real nats-server (JetStream) and one `wasmfleet host` subprocess (--workers 2) in the same run.
An op is one set followed by one get of the same key (get+set pair):

- guest: 10 concurrent HTTP clients (keep-alive) call tests/components/kv-getset-wat, a
  hand-written guest whose every request does store.open("bench"), bucket.set("k", 16 bytes) and
  bucket.get("k") through the host's NATS backend (JetStream KV bucket `bench`); WAT so that the
  guest's own start costs microseconds and the plugin's cost shows;
- peer: 10 concurrent nats-py tasks doing kv.put then kv.get of one key on the same bucket directly,
  from this process (one connection, as a client library user would). The bucket is the one the
  host created, with direct gets allowed, so both sides read through $JS.API.DIRECT.GET.

The HTTP load comes from wrk (Debian package `wrk`) when installed, else from aiohttp in this
process (`--load aiohttp`): on 2 cores an asyncio client takes a third of a core at these rates,
CPU the host then lacks, while the peer's nats-py client is the measured thing itself. Before wrk
runs, aiohttp requests check the guest's answer; wrk counts any response that is not a 2xx.

With --tls, nats-server requires TLS with client certificates (as the Helm chart's does by
default), and the host and the peer both log in with one.

Each round measures the guest, the peer and the in-memory guest back to back; prints the median
round of each, ops/s of each, the ratio guest/direct (issue target >= 0.5), and p50/p99 latency of one op.
The guest path includes HTTP parsing, a fresh wasm instance per request and two host calls; the
peer has none of those, so the ratio is what the plugin costs on top of NATS.

    .venv/bin/python bench/keyvalue_bench.py [--seconds 5] [--rounds 3] [--clients 10] [--workers 2]
                                             [--load wrk|aiohttp] [--tls]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import nats
import wrk_load  # bench/wrk_load.py (this script's folder is on sys.path)

from wasmfleet.bus import messages, subjects
from wasmfleet.bus.connection_options import NatsConnectionOptions
from wasmfleet.testing.nats import NatsServer, free_port
from wasmfleet.testing.pki import make_pki, nats_tls_block

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tests.components.build import build_component, cache_dir  # noqa: E402

BIN = Path(sys.executable).parent
POOL = 0
"""Component.poolSize: 0, a fresh instance per request (the default a Workload gets)."""


async def start_workload(nc: Any, host_id: str, hostname: str, guest: Path, keyvalue: dict[str, str]) -> None:
    start = messages.encode(messages.WorkloadStartRequest(
        workload_id=hostname.replace(".", "-"),
        workload=messages.Workload(namespace="default", name=hostname.replace(".", "-"), wit_world=messages.WitWorld(
            components=[messages.Component(name="kv", image=f"file://{guest}", pool_size=POOL)],
            host_interfaces=[
                messages.WitInterface(namespace="wasi", package="http", interfaces=["incoming-handler"],
                                      config={"host": hostname}),
                messages.WitInterface(namespace="wasi", package="keyvalue", interfaces=["store", "atomics", "batch"],
                                      version="0.2.0-draft", config=keyvalue),
            ]))))
    deadline = time.monotonic() + 60
    while True:  # the host subscribes once it is up
        try:
            reply = await nc.request(subjects.workload_start(host_id), start, timeout=120)
            break
        except nats.errors.NoRespondersError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)
    state = json.loads(reply.data)["workloadStatus"]
    assert state["workloadState"] == "WORKLOAD_STATE_RUNNING", state


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run_clients(clients: int, seconds: float, op: object) -> tuple[int, list[float]]:
    latencies: list[float] = []
    stop_at = time.monotonic() + seconds

    async def client(index: int) -> None:
        while time.monotonic() < stop_at:
            began = time.perf_counter()
            await op(index)  # type: ignore[operator]
            latencies.append(time.perf_counter() - began)

    await asyncio.gather(*(client(i) for i in range(clients)))
    return len(latencies), latencies


Measure = tuple[int, float, float]
"""get+set pairs, p50 and p99 latency in ms."""


def measured(count: int, latencies: list[float]) -> Measure:
    return count, percentile(latencies, 0.5) * 1e3, percentile(latencies, 0.99) * 1e3


def report(name: str, measures: list[Measure], seconds: float) -> float:
    """Prints the median round of `measures` (by ops/s) and returns its ops/s."""
    count, p50, p99 = sorted(measures)[len(measures) // 2]
    rate = count / seconds
    print(f"{name:>9}: {rate:8.0f} ops/s   p50 {p50:6.2f} ms   p99 {p99:6.2f} ms   (median of {len(measures)} rounds; "
          f"ops/s of each: {', '.join(f'{m[0] / seconds:.0f}' for m in measures)})")
    return rate


def bus_for(tmp: Path, tls: bool) -> tuple[NatsServer, NatsConnectionOptions]:
    """The nats-server (not started) and how clients log in to it."""
    if not tls:
        return NatsServer(tmp / "nats"), NatsConnectionOptions()
    pki = make_pki(tmp / "pki")
    port = free_port()
    config = tmp / "nats.conf"
    config.write_text(f'listen: 127.0.0.1:{port}\njetstream {{ store_dir: "{tmp / "js"}" }}\n{nats_tls_block(pki)}\n')
    login = NatsConnectionOptions(tls_ca=pki / "ca.pem", tls_cert=pki / "client.pem", tls_key=pki / "client-key.pem")
    return NatsServer(tmp / "nats", port, config=config), login


async def main(seconds: float, clients: int, workers: int, load: str, rounds: int, tls: bool) -> None:
    guest = build_component("kv-getset-wat")
    with tempfile.TemporaryDirectory(prefix="kv-bench-") as tmp_name:
        tmp = Path(tmp_name)
        server, login = bus_for(tmp, tls)
        with server as bus:
            await measure(bus, login, guest, tmp, seconds, clients, workers, load, rounds)


async def measure(bus: NatsServer, login: NatsConnectionOptions, guest: Path, tmp: Path, seconds: float,
                  clients: int, workers: int, load: str, rounds: int) -> None:
    port, host_id = free_port(), str(uuid.uuid4())
    tls_args = [arg for flag, path in (("--nats-tls-ca", login.tls_ca), ("--nats-tls-cert", login.tls_cert),
                                       ("--nats-tls-key", login.tls_key)) if path for arg in (flag, str(path))]
    host = subprocess.Popen(
        [str(BIN / "wasmfleet"), "host", "--nats", bus.url, "--host-id", host_id, "--workers", str(workers),
         "--http-addr", f"127.0.0.1:{port}", "--allow-file-root", str(cache_dir()),
         "--data-dir", str(tmp / "host"), "--cache-dir", str(tmp / "artifacts"),
         "--log-level", "warning", *tls_args])
    nc = await nats.connect(bus.url, **login.connect_kwargs())
    ratios: list[float] = []
    measures: dict[str, list[Measure]] = {"guest": [], "nats-py": [], "guest-mem": []}
    try:
        for name, config in (("kv.bench", {}), ("mem.bench", {"backend": "in-memory"})):
            await start_workload(nc, host_id, name, guest, config)
        url = f"http://127.0.0.1:{port}/"
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=clients)) as session:
            def via_guest(hostname: str) -> Callable[[int], Awaitable[None]]:
                async def op(index: int) -> None:
                    async with session.get(url, headers={"Host": hostname}) as resp:
                        body = await resp.read()
                        assert resp.status == 200 and body == b"value-0123456789", body
                return op

            async def guest_run(hostname: str) -> Measure:
                await run_clients(clients, 1.0, via_guest(hostname))  # warm (bucket created), answer checked
                if load == "aiohttp":
                    return measured(*await run_clients(clients, seconds, via_guest(hostname)))
                result = await asyncio.to_thread(wrk_load.wrk, url, hostname, seconds, clients)
                if result.failed:
                    raise SystemExit(f"{hostname}: {result.failed} failed requests under wrk")
                return result.requests, result.p50_ms, result.p99_ms

            for _ in range(rounds):  # the machine is noisy: each round measures both sides back to back
                measures["guest"].append(await guest_run("kv.bench"))
                measures["nats-py"].append(await direct_run(nc, clients, seconds))
                measures["guest-mem"].append(await guest_run("mem.bench"))
                ratios.append(measures["guest"][-1][0] / measures["nats-py"][-1][0])
    finally:
        await nc.close()
        host.terminate()
        host.wait(30)
    print(f"wasi:keyvalue get+set, NATS backend{' over TLS' if login.tls_cert else ''}, {clients} concurrent "
          f"clients, {seconds:g} s each, host --workers {workers}, HTTP load from {load}")
    guest_rate = report("guest", measures["guest"], seconds)
    report("nats-py", measures["nats-py"], seconds)
    memory_rate = report("guest-mem", measures["guest-mem"], seconds)
    print(f"   ratio guest/nats-py, median of {rounds} rounds: {statistics.median(ratios):.2f}x "
          f"(each: {', '.join(f'{r:.2f}' for r in ratios)}; target >= 0.5x)")
    print(f"   the same guest on the in-memory backend: {memory_rate:.0f} ops/s; "
          f"NATS keeps {guest_rate / memory_rate:.2f}x")


async def direct_run(nc: Any, clients: int, seconds: float) -> Measure:
    """The peer: kv.put then kv.get from nats-py directly, `clients` concurrent tasks on one connection."""
    kv = await nc.jetstream().key_value("bench")

    async def direct(index: int) -> None:
        await kv.put("d", b"value-0123456789")
        await kv.get("d")

    await run_clients(clients, 1.0, direct)
    return measured(*await run_clients(clients, seconds, direct))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--load", choices=("wrk", "aiohttp"), default="wrk" if wrk_load.have_wrk() else "aiohttp")
    parser.add_argument("--tls", action="store_true", help="NATS over TLS with client certificates")
    args = parser.parse_args()
    asyncio.run(main(args.seconds, args.clients, args.workers, args.load, args.rounds, args.tls))
