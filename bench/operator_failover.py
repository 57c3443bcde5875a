"""Benchmark: kill -9 of a host to its replicas serving HTTP on other hosts (median and worst of 10).

Everything real: nats-server, the embedded API server, the `wasmfleet operator` process
(--host-expiry 3) and `wasmfleet host` processes (heartbeat every 1 s) serving the hello-wat
component. Each round kills a host that runs a replica, measures until both replicas answer
HTTP 200 with Ready status on live hosts, then starts a replacement host (the operator then spreads
the replicas back onto it). Prints every kill, the median and the worst. Targets: every kill <= 3.5 s
with 1 s heartbeats (issue 11: a status probe to a host killed meanwhile once held re-placement for
its 5 s timeout), <= 5 s overall; upstream wasmCloud needs about 2 minutes without Kubernetes pod
hooks (upstream-facts.md; not run here).

    python bench/operator_failover.py [--kills 10] [--hosts 4] [--expiry 3] [--interval 1]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "integration"))
sys.path.insert(0, str(REPO))

import operator_harness as h  # noqa: E402
from tests.components.build import build_component, cache_dir  # noqa: E402

from wasmfleet.kube import client, rest_paths  # noqa: E402
from wasmfleet.testing import nats as nats_helper  # noqa: E402

NS = "default"
BIN = Path(sys.executable).parent


async def http_ok(port: int, hostname: str) -> bool:
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=1)) as s, s.get(
            f"http://127.0.0.1:{port}/", headers={"Host": hostname}
        ) as r:
            return r.status == 200
    except (aiohttp.ClientError, TimeoutError):
        return False


async def serving(kube: client.KubeClient, replicas: int, dead: set[str]) -> dict[str, str] | None:
    """uid -> hostId when every replica is Ready on a live host and answers 200 there."""
    items, _ = await kube.list(rest_paths.WORKLOADS, NS)
    hosts, _ = await kube.list(rest_paths.HOSTS, NS)
    port_of = {x["hostId"]: x["httpPort"] for x in hosts}
    placed: dict[str, str] = {}
    for w in items:
        st = w.get("status") or {}
        ready = any(c["type"] == "Ready" and c["status"] == "True" for c in st.get("conditions") or [])
        if not ready or st.get("hostId") in dead or st.get("hostId") not in port_of:
            return None
        if not await http_ok(port_of[st["hostId"]], "bench.localhost"):
            return None
        placed[w["metadata"]["uid"]] = st["hostId"]
    return placed if len(placed) == replicas else None


async def run(args: argparse.Namespace) -> None:
    wasm = build_component("hello-wat")
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        with nats_helper.running_nats_server(tmp / "nats") as url, h.apiserver(tmp / "api") as kubeconfig:
            procs: dict[str, subprocess.Popen[bytes]] = {}
            ids: dict[str, str] = {}

            def start_host(name: str) -> None:
                procs[name] = subprocess.Popen(
                    [str(BIN / "wasmfleet"), "host", "--nats", url, "--name", name, "--heartbeat-interval",
                     str(args.interval), "--cache-dir", str(tmp / "cache"), "--log-level", "warning",
                     "--allow-file-root", str(cache_dir())],  # the built guest
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                )

            op = subprocess.Popen(
                [str(BIN / "wasmfleet"), "operator", "--kubeconfig", str(kubeconfig), "--nats", url,
                 "--listen", "127.0.0.1:0", "--host-expiry", str(args.expiry), "--log-level", "warning"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            kube = await h.kube_client(kubeconfig)
            serial = 0
            try:
                for _ in range(args.hosts):
                    serial += 1
                    start_host(f"bench-host-{serial:04d}")

                async def hosts_ready(n: int) -> bool:
                    items, _ = await kube.list(rest_paths.HOSTS, NS)
                    live = [x for x in items if any(c["type"] == "Ready" and c["status"] == "True"
                                                    for c in (x.get("status") or {}).get("conditions") or [])]
                    ids.update({x["hostId"]: x["metadata"]["name"] for x in items})
                    return len(live) >= n

                await h.eventually(lambda: hosts_ready(args.hosts), timeout_s=60, what="hosts")
                await kube.create(rest_paths.DEPLOYMENTS, NS, {
                    "apiVersion": "runtime.wasmcloud.dev/v1alpha1", "kind": "WorkloadDeployment",
                    "metadata": {"name": "bench", "namespace": NS},
                    "spec": {"replicas": args.replicas, "template": {"spec": {
                        "components": [{"name": "hello", "image": f"file://{wasm}"}],
                        "hostInterfaces": [{"namespace": "wasi", "package": "http",
                                            "interfaces": ["incoming-handler"], "config": {"host": "bench.localhost"}}],
                    }}}})
                dead: set[str] = set()
                placed = await h.eventually(lambda: serving(kube, args.replicas, dead), timeout_s=60, what="serving")
                times = []
                for round_ in range(args.kills):
                    victim_id = sorted(placed.values())[round_ % len(set(placed.values()))]
                    victim = ids[victim_id]
                    os.kill(procs[victim].pid, signal.SIGKILL)
                    procs[victim].wait()
                    t0 = time.monotonic()
                    dead.add(victim_id)
                    while True:
                        got = await serving(kube, args.replicas, dead)
                        if got:
                            placed = got
                            break
                        if time.monotonic() - t0 > 60:
                            raise SystemExit("replicas did not come back within 60 s")
                        await asyncio.sleep(0.05)
                    times.append(time.monotonic() - t0)
                    print(f"kill {round_ + 1}: {victim} -> serving elsewhere after {times[-1]:.2f}s", flush=True)
                    serial += 1
                    start_host(f"bench-host-{serial:04d}")
                    await h.eventually(lambda: hosts_ready(args.hosts), timeout_s=60, what="replacement host")
                median, worst = statistics.median(times), max(times)
                print(f"failover over {len(times)} kills (heartbeat {args.interval:g}s, expiry {args.expiry:g}s): "
                      f"median {median:.2f}s, worst {worst:.2f}s")
                print(f"target every kill <= 3.5 s -> worst {worst:.2f}s, ratio {worst / 3.5:.2f}; "
                      f"{sum(t > 3.5 for t in times)} of {len(times)} kills over")
                print(f"target <= 5 s -> ratio median {median / 5:.2f}, worst {worst / 5:.2f}; "
                      f"upstream ~120 s -> {120 / median:.0f}x faster (upstream figure from its docs, not run here)")
                print(f"machine load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
            finally:
                await kube.close()
                op.terminate()
                for p in procs.values():
                    if p.poll() is None:
                        p.terminate()
                for p in [op, *procs.values()]:
                    try:
                        p.wait(15)
                    except subprocess.TimeoutExpired:
                        p.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--hosts", type=int, default=4)
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--expiry", type=float, default=3.0)
    parser.add_argument("--interval", type=float, default=1.0)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
