"""Benchmark: single-replica WorkloadDeployments (1,000 by default) onto 10 hosts.

Measures the time from the first create until every Workload is Ready, and the operator process's
peak RSS and CPU time, against the targets for 10,000 deployments (<= 120 s, <= 400 MB, <= 8 ms of
operator CPU per deployment; issue 18). Real nats-server, real
embedded API server, the real `wasmfleet operator` process; the 10 hosts are protocol responders
(tests/integration/operator_harness.FakeHost) in one separate process, so the figures measure the
control plane rather than wasm compilation (bench/operator_failover.py uses real hosts).

    python bench/operator_scale.py [--deployments 1000] [--hosts 10] [--profile out.txt]

--profile samples the operator process with py-spy (pip install py-spy) for the whole run and
writes its collapsed stacks (flamegraph.pl input; `sort -k2 -n` shows the hottest stacks).
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

import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "integration"))

import operator_harness as h  # noqa: E402

from wasmfleet.kube import rest_paths  # noqa: E402
from wasmfleet.testing import apiserver as apiserver_helper  # noqa: E402
from wasmfleet.testing import nats as nats_helper  # noqa: E402

NS = "default"
BIN = Path(sys.executable).parent


async def fake_hosts(url: str, n: int) -> None:
    hosts = [await h.FakeHost(url, f"bench-host-{i:04d}", interval_s=1.0).start() for i in range(n)]
    try:
        await asyncio.Event().wait()
    finally:
        for x in hosts:
            await x.kill()


def wd(i: int) -> dict[str, object]:
    return {
        "apiVersion": "runtime.wasmcloud.dev/v1alpha1",
        "kind": "WorkloadDeployment",
        "metadata": {"name": f"bench-{i:04d}", "namespace": NS},
        "spec": {"replicas": 1, "template": {"spec": {
            "components": [{"name": "hello", "image": "file:///tmp/hello.wasm"}],
            "hostInterfaces": [{"namespace": "wasi", "package": "http", "interfaces": ["incoming-handler"],
                                "config": {"host": f"bench-{i:04d}.localhost"}}],
        }}},
    }


def ready_count(items: list[dict[str, object]]) -> int:
    n = 0
    for w in items:
        for c in (w.get("status") or {}).get("conditions") or []:  # type: ignore[attr-defined]
            if c["type"] == "Ready" and c["status"] == "True":
                n += 1
    return n


async def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        with nats_helper.running_nats_server(tmp / "nats") as url, \
                apiserver_helper.apiserver_process(tmp / "api") as api_proc:
            kubeconfig = api_proc.kubeconfig
            api_ps = psutil.Process(api_proc.pid)
            hosts_proc = subprocess.Popen([sys.executable, __file__, "--fake-hosts", str(args.hosts), "--nats", url])
            op_log = open(tmp / "operator.log", "ab")  # noqa: SIM115
            op = subprocess.Popen(
                [str(BIN / "wasmfleet"), "operator", "--kubeconfig", str(kubeconfig), "--nats", url,
                 "--listen", "127.0.0.1:0", "--host-expiry", "3", "--concurrency", str(args.concurrency),
                 "--log-level", "warning"],
                stdout=op_log, stderr=subprocess.STDOUT,
            )
            ps = psutil.Process(op.pid)
            kube = await h.kube_client(kubeconfig)
            try:
                async def hosts_ready() -> bool:
                    items, _ = await kube.list(rest_paths.HOSTS, NS)
                    return len(items) == args.hosts

                await h.eventually(hosts_ready, timeout_s=60, what="hosts registered")
                await asyncio.sleep(3.5)  # the operator's startup grace for placements
                spy = None
                if args.profile:
                    spy = subprocess.Popen(["py-spy", "record", "-p", str(op.pid), "-o", args.profile, "-f", "raw",
                                            "-r", "50", "--nonblocking"], stdout=subprocess.DEVNULL)
                cpu0 = sum(ps.cpu_times()[:2])
                api_cpu0 = sum(api_ps.cpu_times()[:2])
                t0 = time.monotonic()
                sem = asyncio.Semaphore(16)

                async def create(i: int) -> None:
                    async with sem:
                        await kube.create(rest_paths.DEPLOYMENTS, NS, wd(i))

                await asyncio.gather(*(create(i) for i in range(args.deployments)))
                created = time.monotonic() - t0
                peak_rss = 0
                rss_samples = []
                ready = 0
                while ready < args.deployments and time.monotonic() - t0 < args.timeout:
                    await asyncio.sleep(1.0)
                    rss = ps.memory_info().rss
                    peak_rss = max(peak_rss, rss)
                    rss_samples.append(rss)
                    items, _ = await kube.list(rest_paths.WORKLOADS, NS)
                    ready = ready_count(items)
                elapsed = time.monotonic() - t0
                cpu = sum(ps.cpu_times()[:2]) - cpu0
                api_cpu = sum(api_ps.cpu_times()[:2]) - api_cpu0
                if spy is not None:
                    spy.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
                    spy.wait(30)
                items, _ = await kube.list(rest_paths.WORKLOADS, NS)
                per_host: dict[str, int] = {}
                for w in items:
                    host = (w.get("status") or {}).get("hostId", "")
                    per_host[host] = per_host.get(host, 0) + 1
                print(f"deployments: {args.deployments} on {args.hosts} hosts (fake protocol hosts)")
                print(f"created all in {created:.1f}s; all Ready after {elapsed:.1f}s "
                      f"({ready}/{args.deployments} ready); target <= 120 s for 10,000 -> ratio "
                      f"{elapsed / (120 * args.deployments / 10_000):.2f} (scaled to this count)")
                median_rss = statistics.median(rss_samples) / 2**20
                print(f"operator peak RSS {peak_rss / 2**20:.0f} MB (median {median_rss:.0f} MB);"
                      f" target <= 400 MB at 10,000 -> ratio {peak_rss / 2**20 / 400:.2f}")
                per_dep_ms = 1000 * cpu / args.deployments
                print(f"operator CPU {cpu:.1f}s over {elapsed:.1f}s ({100 * cpu / elapsed:.0f}% of one core), "
                      f"{per_dep_ms:.1f} ms per deployment; target <= 8 ms -> ratio {per_dep_ms / 8:.2f}")
                print(f"API server CPU {api_cpu:.1f}s ({100 * api_cpu / elapsed:.0f}% of one core), "
                      f"{1000 * api_cpu / args.deployments:.1f} ms per deployment")
                print(f"machine load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
                print(f"workloads per host: min {min(per_host.values())} max {max(per_host.values())}")
            finally:
                await kube.close()
                op.terminate()
                op.wait(20)
                hosts_proc.terminate()
                hosts_proc.wait(10)
                op_log.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--deployments", type=int, default=1000)
    parser.add_argument("--hosts", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument("--profile", default="", help="py-spy the operator into this file (collapsed stacks)")
    parser.add_argument("--fake-hosts", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--nats", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.fake_hosts:
        asyncio.run(fake_hosts(args.nats, args.fake_hosts))
        return
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
