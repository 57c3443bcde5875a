"""Benchmark of the gateway and the fleet's dynamics, not a test. Needs `wrk` (apt-get install wrk).

Starts a real fleet with `wasmfleet up` (2 hosts in group default), deploys examples/hello and prints:
1. req/s and p50 latency straight to the host vs through the gateway (wrk, same connections, alternating
   rounds), and their ratio (target >= 0.8);
2. apply -> first 200 through the gateway for a new deployment of an already cached component (median of
   several; target < 1 s);
3. failover of a single-replica workload: kill -9 its host, time until the gateway answers 200 again
   (target <= 5 s);
4. a rolling update under load (4 clients): failed requests (target 0).

    .venv/bin/python bench/gateway_bench.py [--seconds 5] [--rounds 3] [--connections 16]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import psutil
import wrk_load  # bench/wrk_load.py (this script's folder is on sys.path)
import yaml

from wasmfleet.cli import resources_api, resources_cmd

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "hello"
WF = [sys.executable, "-c", "from wasmfleet.cli.main import main; main()"]


def manifest(name: str, host: str, replicas: int, version: str = "1") -> str:
    doc = yaml.safe_load((EXAMPLE / "deployment.yaml").read_text())
    doc["metadata"]["name"] = name
    doc["spec"]["replicas"] = replicas
    doc["spec"]["template"]["metadata"]["annotations"] = {"bench/version": version}
    doc["spec"]["template"]["spec"]["components"][0]["image"] = f"file://{EXAMPLE / 'hello.wasm'}"
    doc["spec"]["template"]["spec"]["hostInterfaces"][0]["config"]["host"] = host
    return yaml.safe_dump(doc)


class Fleet:
    def __init__(self, data: Path) -> None:
        self.data = data
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [*WF, "up", "--data-dir", str(self.data), "--host-groups", "default", "--hosts-per-group", "2"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if "Ctrl-C stops everything" in line:
                return
        raise SystemExit("wasmfleet up failed; see " + str(self.data / "logs"))

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGINT)
            self.proc.wait(60)

    @property
    def gateway(self) -> str:
        return f"http://127.0.0.1:{json.loads((self.data / 'ports.json').read_text())['gateway']}"

    def children(self) -> dict[str, Any]:
        return dict(json.loads((self.data / "children.json").read_text()))

    def apply(self, text: str) -> None:
        subprocess.run([*WF, "apply", "-f", "-", "--data-dir", str(self.data)], input=text, text=True,
                       check=True, capture_output=True)

    def kubectl(self, *args: str) -> Any:
        env = {**os.environ, "KUBECONFIG": str(self.data / "kubeconfig")}
        out = subprocess.run([str(Path(sys.executable).parent / "kubectl"), *args, "-o", "json"], env=env,
                             check=True, capture_output=True, text=True).stdout
        return json.loads(out)


async def first_200(base: str, host: str, timeout: float = 60.0) -> float:
    started = time.monotonic()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        while time.monotonic() - started < timeout:
            try:
                async with session.get(base + "/", headers={"Host": host}) as r:
                    if r.status == 200:
                        return time.monotonic() - started
            except (aiohttp.ClientError, TimeoutError):
                pass
            await asyncio.sleep(0.01)
    raise SystemExit(f"{host} never answered 200")


def wrk(url: str, host: str, seconds: int, connections: int) -> tuple[float, float]:
    result = wrk_load.wrk(url, host, seconds, connections)
    if result.failed:
        print(f"   warning: {result.failed} failed requests (non-2xx or socket errors) from {url}")
    return result.rps, result.p50_ms


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk not found: apt-get install -y wrk")
    with tempfile.TemporaryDirectory(prefix="wasmfleet-bench-") as tmp:
        fleet = Fleet(Path(tmp) / "fleet")
        t0 = time.monotonic()
        fleet.start()
        print(f"fleet up in {time.monotonic() - t0:.1f} s (nats, apiserver, operator, 2 hosts, gateway)")
        try:
            await run(fleet, args)
        finally:
            fleet.stop()


async def run(fleet: Fleet, args: argparse.Namespace) -> None:
    gw = fleet.gateway
    fleet.apply(manifest("bench", "bench.localhost", 1))
    await first_200(gw, "bench.localhost")
    workload = fleet.kubectl("get", "workloads")["items"][0]
    host = next(h for h in fleet.kubectl("get", "hosts")["items"] if h["hostId"] == workload["status"]["hostId"])
    direct = f"http://127.0.0.1:{host['httpPort']}/"

    print(f"\n1. throughput, wrk -c{args.connections}, {args.rounds} x {args.seconds} s each, 1 replica")
    results: dict[str, list[tuple[float, float]]] = {"direct": [], "gateway": []}
    wrk(direct, "bench.localhost", 1, args.connections)  # warm-up
    wrk(gw + "/", "bench.localhost", 1, args.connections)
    kids = fleet.children()
    host_child = next(n for n in kids if n.startswith("host") and _port_of(fleet, n) == host["httpPort"])
    procs = {"gateway": psutil.Process(kids["gateway"]["pid"]), "host": psutil.Process(kids[host_child]["pid"])}
    cpu_per_req: dict[str, list[float]] = {"gateway": [], "host": []}
    for _ in range(args.rounds):
        results["direct"].append(wrk(direct, "bench.localhost", args.seconds, args.connections))
        before = {k: _cpu(p) for k, p in procs.items()}
        rps, p50 = wrk(gw + "/", "bench.localhost", args.seconds, args.connections)
        results["gateway"].append((rps, p50))
        for k, p in procs.items():
            cpu_per_req[k].append((_cpu(p) - before[k]) / (rps * args.seconds) * 1e6)
    med = {k: (statistics.median(r for r, _ in v), statistics.median(p for _, p in v)) for k, v in results.items()}
    for k, (rps, p50) in med.items():
        print(f"   {k:<8} {rps:8.0f} req/s   p50 {p50:6.2f} ms")
    print(f"   gateway / direct = {med['gateway'][0] / med['direct'][0]:.2f}x req/s (target >= 0.8)")
    print(f"   CPU per request through the gateway: gateway {statistics.median(cpu_per_req['gateway']):.0f} us, "
          f"host {statistics.median(cpu_per_req['host']):.0f} us; machine: {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f} (other processes compete for the same cores)")

    print("\n2. apply -> first 200 through the gateway (component already cached), API apply in this process")
    times = []
    api = await resources_api.Api.connect(fleet.data / "kubeconfig")
    try:
        for i in range(5):
            docs = [("bench", yaml.safe_load(manifest(f"quick{i}", f"quick{i}.localhost", 1)))]
            started = time.monotonic()
            await resources_cmd.apply_documents(api, docs, None, lambda _line: None)
            times.append(time.monotonic() - started + await first_200(gw, f"quick{i}.localhost"))
    finally:
        await api.close()
    print(f"   median {statistics.median(times):.2f} s (min {min(times):.2f}, max {max(times):.2f}; target < 1 s)")
    cli = []
    for i in range(2):
        started = time.monotonic()
        fleet.apply(manifest(f"cli{i}", f"cli{i}.localhost", 1))
        cli.append(time.monotonic() - started + await first_200(gw, f"cli{i}.localhost"))
    print(f"   counting the `wasmfleet apply` process start (interpreter + imports): {statistics.median(cli):.2f} s")

    print("\n3. failover of a single-replica workload: kill -9 its host")
    victim = next(n for n, c in fleet.children().items()
                  if n.startswith("host") and _port_of(fleet, n) == host["httpPort"])
    os.kill(fleet.children()[victim]["pid"], signal.SIGKILL)
    killed = time.monotonic()
    await asyncio.sleep(0.05)
    recovered = await first_200(gw, "bench.localhost")
    print(f"   first 200 again after {time.monotonic() - killed:.2f} s (probe loop {recovered:.2f} s; target <= 5 s)")

    print("\n4. rolling update under load (4 clients), 2 replicas")
    fleet.apply(manifest("roll", "roll.localhost", 2))
    await first_200(gw, "roll.localhost")
    await asyncio.sleep(2)
    counts: Counter[int] = Counter()
    stop = asyncio.Event()

    async def client(session: aiohttp.ClientSession) -> None:
        while not stop.is_set():
            try:
                async with session.get(gw + "/", headers={"Host": "roll.localhost"}) as r:
                    await r.read()
                    counts[r.status] += 1
            except (aiohttp.ClientError, TimeoutError):
                counts[0] += 1

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        tasks = [asyncio.create_task(client(session)) for _ in range(4)]
        await asyncio.sleep(1)
        before = fleet.kubectl("get", "workloaddeployment", "roll")["status"].get("currentReplicaSet")
        fleet.apply(manifest("roll", "roll.localhost", 2, version="2"))
        started = time.monotonic()
        while True:
            wd = fleet.kubectl("get", "workloaddeployment", "roll")
            current = wd["status"].get("currentReplicaSet")
            wls = [w for w in fleet.kubectl("get", "workloads")["items"] if w["metadata"]["name"].startswith("roll-")]
            ready = [w for w in wls if any(c["type"] == "Ready" and c["status"] == "True"
                                           for c in w.get("status", {}).get("conditions", []))]
            if current != before and len(wls) == 2 and len(ready) == 2 and all(
                    w["metadata"]["name"].startswith(current) for w in wls):
                break
            if time.monotonic() - started > 60:
                print("   rollout did not finish in 60 s")
                break
            await asyncio.sleep(0.2)
        took = time.monotonic() - started
        await asyncio.sleep(1)
        stop.set()
        await asyncio.gather(*tasks)
    failed = sum(n for code, n in counts.items() if code != 200)
    print(f"   rollout took {took:.1f} s; {sum(counts.values())} requests, {failed} failed (target 0): {dict(counts)}")


def _port_of(fleet: Fleet, child: str) -> int:
    return int(json.loads((fleet.data / "ports.json").read_text()).get("host:" + child.removeprefix("host "), 0))


def _cpu(proc: psutil.Process) -> float:
    """User+system seconds of a process and its children (host workers)."""
    total = sum(proc.cpu_times()[:2])
    for child in proc.children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            total += sum(child.cpu_times()[:2])
    return total


if __name__ == "__main__":
    asyncio.run(main())
