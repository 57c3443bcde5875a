"""Benchmark of wasmcloud:messaging handlers, not a test.

One nats-server; in the same run, three responders on their own subjects, each doing the same
transformation (upper-case the body, publish it to the reply subject):

- peer: a plain nats-py subscriber in its own Python process (`--peer` mode of this file);
- `wasmfleet host --workers 1` running tests/components/messaging-wat (a trivial WAT handler, a
  fresh instance per message, as by default);
- `wasmfleet host --workers 2`, same workload;
- the same two hosts with a second workload of the handler at poolSize 16 (warm instances reused).

A load generator (this process) keeps `--concurrency` requests outstanding for `--seconds` against
each, and reports replies per second, the ratio to the peer (target >= 0.3x), and the p50 / p99
request->reply latency under that load; then p50 / p99 with one request at a time (no queueing).

The responders are measured in `--rounds` rounds, each round measuring every responder once in
turn; a responder's ratio is taken against the peer's rate in the same round, and the table shows
the median over the rounds (rate, ratio) and the spread of the ratio: on a shared machine the load
of other work changes from one minute to the next, and a ratio of two figures measured minutes
apart says more about that than about the host.

`--before DIR` (a `src/` directory of another checkout, e.g. `git archive <commit> src | tar -x`)
adds two hosts running that code with the same fresh-instance workloads, measured in the same
rounds: before/after figures from one run.

    .venv/bin/python bench/messaging_bench.py [--seconds 5] [--concurrency 64] [--rounds 3] [--before DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import nats

from wasmfleet.bus import messages, subjects
from wasmfleet.testing.nats import nats_server

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
sys.path.insert(0, str(REPO))
from tests.components.build import build_component  # noqa: E402


async def peer(url: str, subject: str) -> None:
    """The plain subscriber: what the handler does, in Python, straight on nats-py."""
    nc = await nats.connect(url)

    async def on_message(msg: Any) -> None:
        await nc.publish(msg.reply, msg.data.upper())

    await nc.subscribe(subject, queue="peer", cb=on_message)
    await nc.flush()
    print("ready", flush=True)
    await asyncio.Event().wait()


def spawn_peer(url: str, subject: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, __file__, "--peer", url, subject], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    proc.stdout.readline()
    return proc


def spawn_host(url: str, data: Path, workers: int, src: str | None = None) -> subprocess.Popen[bytes]:
    env = dict(os.environ, XDG_CACHE_HOME=str(data / "xdg"))
    if src:
        env["PYTHONPATH"] = os.pathsep.join([src, *os.environ.get("PYTHONPATH", "").split(os.pathsep)[1:]])
    return subprocess.Popen(
        [str(BIN / "wasmfleet"), "host", "--nats", url, "--workers", str(workers), "--http-addr", "127.0.0.1:0",
         "--data-dir", str(data / "host"), "--cache-dir", str(data / "artifacts"), "--log-level", "warning",
         "--allow-file-root", str(REPO / ".cache")],
        env=env,
    )


async def wait_heartbeat(nc: Any, exclude: set[str]) -> str:
    sub = await nc.subscribe(subjects.operator_heartbeats())
    try:
        while True:
            beat = messages.decode(messages.HostHeartbeat, (await sub.next_msg(timeout=60)).data)
            if beat.id not in exclude:
                return beat.id
    finally:
        await sub.unsubscribe()


async def start_handler(nc: Any, host_id: str, image: Path, subject: str, pool: int) -> None:
    request = messages.WorkloadStartRequest(
        workload_id=f"bench-{subject}",
        workload=messages.Workload(namespace="bench", name=subject, wit_world=messages.WitWorld(
            components=[messages.Component(name="upper", image=f"file://{image}", pool_size=pool)],
            host_interfaces=[messages.WitInterface(namespace="wasmcloud", package="messaging", version="0.2.0",
                                                   interfaces=["handler", "consumer"],
                                                   config={"subscriptions": subject})],
        )),
    )
    reply = await nc.request(subjects.workload_start(host_id), messages.encode(request), timeout=120)
    status = json.loads(reply.data)["workloadStatus"]
    if status["workloadState"] != "WORKLOAD_STATE_RUNNING":
        raise SystemExit(f"handler did not start: {status}")


async def load(nc: Any, subject: str, seconds: float, concurrency: int) -> tuple[float, list[float]]:
    """(replies per second, latencies) with `concurrency` requests outstanding."""
    latencies: list[float] = []
    end = time.perf_counter() + seconds
    failures = 0

    async def client(i: int) -> None:
        nonlocal failures
        body = f"message number {i} from the load generator".encode()
        while time.perf_counter() < end:
            began = time.perf_counter()
            try:
                reply = await nc.request(subject, body, timeout=10)
            except Exception:
                failures += 1
                continue
            latencies.append(time.perf_counter() - began)
            assert reply.data == body.upper()

    began = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(concurrency)))
    if failures:
        print(f"  ({failures} request(s) failed on {subject})")
    return len(latencies) / (time.perf_counter() - began), latencies


def pct(values: list[float], q: float) -> float:
    return 1000 * statistics.quantiles(values, n=100)[int(q) - 1] if len(values) > 1 else float("nan")


async def measure(nc: Any, subject: str, args: argparse.Namespace) -> tuple[float, list[float], list[float]]:
    """(rate, latencies under load, latencies one at a time) of one round."""
    rate, loaded = await load(nc, subject, args.seconds, args.concurrency)
    _, single = await load(nc, subject, min(args.seconds, 2.0), 1)
    return rate, loaded, single


async def main(args: argparse.Namespace) -> None:
    image = build_component("messaging-wat")
    with tempfile.TemporaryDirectory() as tmp, nats_server(Path(tmp) / "nats") as bus:
        nc = await nats.connect(bus.url)
        procs: list[subprocess.Popen[bytes]] = []
        try:
            procs.append(spawn_peer(bus.url, "bench.peer"))
            seen: set[str] = set()
            for workers in (1, 2):
                procs.append(spawn_host(bus.url, Path(tmp) / f"w{workers}", workers))
                host_id = await wait_heartbeat(nc, seen)
                seen.add(host_id)
                await start_handler(nc, host_id, image, f"bench.w{workers}", 0)
                await start_handler(nc, host_id, image, f"bench.w{workers}.warm", 16)
                if args.before:
                    procs.append(spawn_host(bus.url, Path(tmp) / f"b{workers}", workers, args.before))
                    host_id = await wait_heartbeat(nc, seen)
                    seen.add(host_id)
                    await start_handler(nc, host_id, image, f"bench.b{workers}", 0)
            responders = (("plain nats-py subscriber", "bench.peer"),
                          ("wasm, 1 worker, fresh", "bench.w1"),
                          ("wasm, 2 workers, fresh", "bench.w2"),
                          ("wasm, 1 worker, poolSize 16", "bench.w1.warm"),
                          ("wasm, 2 workers, poolSize 16", "bench.w2.warm"),
                          *((("before: 1 worker, fresh", "bench.b1"), ("before: 2 workers, fresh", "bench.b2"))
                            if args.before else ()))
            for _, subject in responders:
                await load(nc, subject, 1.0, args.concurrency)  # warm-up
            rates: dict[str, list[float]] = {label: [] for label, _ in responders}
            ratios: dict[str, list[float]] = {label: [] for label, _ in responders}
            loaded: dict[str, list[float]] = {label: [] for label, _ in responders}
            single: dict[str, list[float]] = {label: [] for label, _ in responders}
            for _ in range(args.rounds):
                round_rates = {}
                for label, subject in responders:
                    round_rates[label], under_load, one = await measure(nc, subject, args)
                    loaded[label] += under_load
                    single[label] += one
                for label, rate in round_rates.items():
                    rates[label].append(rate)
                    ratios[label].append(rate / round_rates["plain nats-py subscriber"])
            print(f"\nmessaging request/reply, {args.concurrency} outstanding, {args.seconds:g} s each, "
                  f"median of {args.rounds} rounds (cpus: {os.cpu_count()})")
            print(f"{'responder':28} {'msg/s':>8} {'ratio':>6} {'(rounds)':>12} {'p50':>8} {'p99':>8}   "
                  f"{'p50 (1 at a time)':>18} {'p99':>8}")
            for label, _ in responders:
                spread = f"{min(ratios[label]):.2f}-{max(ratios[label]):.2f}"
                print(f"{label:28} {statistics.median(rates[label]):8.0f} {statistics.median(ratios[label]):5.2f}x "
                      f"{spread:>12} {pct(loaded[label], 50):6.2f}ms {pct(loaded[label], 99):6.2f}ms   "
                      f"{pct(single[label], 50):16.2f}ms {pct(single[label], 99):6.2f}ms")
        finally:
            await nc.close()
            for proc in procs:
                proc.terminate()
            for proc in procs:
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--peer":
        asyncio.run(peer(sys.argv[2], sys.argv[3]))
        raise SystemExit
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--before", help="src/ of another checkout, run by two more hosts for comparison")
    asyncio.run(main(parser.parse_args()))
