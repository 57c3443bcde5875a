"""Benchmark of the dashboard's own cost with many workloads, not a test. Needs chromium
(scripts/deps.d/chromium.sh) and the playwright package.

Starts a real `wasmfleet apiserver`, fills it with N Workloads (default 1,000) placed on 10 Hosts with
a Ready condition, puts a request-counting proxy in front of it, starts `wasmfleet dashboard` through
the proxy, and prints:
1. server render time per page (GET: the first, and the median of --rounds) and its size;
2. browser page load per page in headless chromium (navigation start -> load event, median of
   --rounds), next to the peer `kubectl get workloads -o json` on the same API server (ratio);
3. watches the API server sees with 3 browser tabs open (per kind; a dashboard that watched per tab
   would open 3 per kind);
4. time from creating one more Workload to the open workloads tab (the list's last page) showing it.

    .venv/bin/python bench/dashboard_bench.py [--workloads 1000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from wasmfleet.kube import client, rest_paths
from wasmfleet.testing.apiserver import running_apiserver
from wasmfleet.testing.request_counting_proxy import CountingProxy

PAGES = ("/", "/deployments", "/workloads", "/workloads?page=5", "/placement", "/events")
HOSTS = 10
WF = [sys.executable, "-c", "from wasmfleet.cli.main import main; main()"]


def host(i: int) -> dict[str, Any]:
    return {"apiVersion": "runtime.wasmcloud.dev/v1alpha1", "kind": "Host",
            "metadata": {"name": f"host-{i}", "namespace": "default", "labels": {"hostgroup": f"g{i % 3}"}},
            "hostId": f"h-{i}", "httpPort": 9000 + i}


def workload(i: int) -> dict[str, Any]:
    return {"apiVersion": "runtime.wasmcloud.dev/v1alpha1", "kind": "Workload",
            "metadata": {"name": f"w-{i:04d}", "namespace": "default",
                         "labels": {"runtime.wasmcloud.dev/workload-deployment": f"d-{i % 20}"}},
            "spec": {"hostSelector": {"hostgroup": "g0"},
                     "components": [{"name": "app", "image": "file:///srv/app.wasm"}],
                     "hostInterfaces": [{"namespace": "wasi", "package": "http", "interfaces": ["incoming-handler"],
                                         "config": {"host": f"w{i}.localhost"}}]}}


def ready_status(i: int) -> dict[str, Any]:
    now = "2026-12-07T00:00:00Z"
    conds = [{"type": t, "status": "True", "reason": "Done", "message": "", "lastTransitionTime": now}
             for t in ("Config", "HostSelection", "Placement", "Sync", "Ready")]
    return {"status": {"hostId": f"h-{i % HOSTS}", "conditions": conds}}


async def fill(kube: client.KubeClient, n: int) -> float:
    started = time.monotonic()
    for i in range(HOSTS):
        await kube.create(rest_paths.HOSTS, "default", host(i))
    sem = asyncio.Semaphore(16)

    async def one(i: int) -> None:
        async with sem:
            await kube.create(rest_paths.WORKLOADS, "default", workload(i))
            await kube.patch(rest_paths.WORKLOADS, "default", f"w-{i:04d}", ready_status(i), subresource="status")

    await asyncio.gather(*(one(i) for i in range(n)))
    return time.monotonic() - started


async def start_dashboard(kubeconfig: Path) -> tuple[asyncio.subprocess.Process, str]:
    proc = await asyncio.create_subprocess_exec(*WF, "dashboard", "--kubeconfig", str(kubeconfig),
                                                "--addr", "127.0.0.1:0", "--log-level", "warning",
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    assert proc.stdout is not None
    line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
    if "dashboard on " not in line:
        raise SystemExit(f"dashboard did not start: {line}")
    url = line.split("dashboard on ", 1)[1].strip().rstrip("/")
    async with aiohttp.ClientSession() as session:
        while True:  # ready once every informer has listed
            async with session.get(url + "/healthz") as resp:
                if resp.status == 200:
                    return proc, url
            await asyncio.sleep(0.1)


async def kubectl_get(kubeconfig: Path) -> float:
    kubectl = shutil.which("kubectl", path=str(Path(sys.executable).parent)) or "kubectl"
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(kubectl, "--kubeconfig", str(kubeconfig), "get", "workloads",
                                                "-o", "json", stdout=asyncio.subprocess.DEVNULL)
    await proc.wait()
    return time.monotonic() - started


async def main(args: argparse.Namespace) -> None:
    from playwright.async_api import async_playwright

    with tempfile.TemporaryDirectory() as tmp, running_apiserver(Path(tmp) / "api") as kubeconfig:
        kube = await client.KubeClient.from_kubeconfig(kubeconfig)
        took = await fill(kube, args.workloads)
        print(f"filled: {args.workloads} workloads on {HOSTS} hosts in {took:.1f} s")
        server = yaml.safe_load(kubeconfig.read_text())["clusters"][0]["cluster"]["server"]
        proxy = CountingProxy(server)
        await proxy.start()
        proxied = proxy.kubeconfig(kubeconfig, Path(tmp) / "proxied" / "kubeconfig")
        proc, url = await start_dashboard(proxied)
        try:
            print(f"\n1. server render (GET; the first renders, later ones hit the per-generation cache; median of "
                  f"{args.rounds}):")
            async with aiohttp.ClientSession() as session:
                for page in PAGES:
                    times, size = [], 0
                    for _ in range(args.rounds):
                        started = time.monotonic()
                        async with session.get(url + page) as resp:
                            size = len(await resp.read())
                        times.append(time.monotonic() - started)
                    median = statistics.median(times)
                    print(f"   {page:<17} first {1000 * times[0]:7.1f} ms, median {1000 * median:7.1f} ms"
                          f"  {size / 1024:7.1f} KiB")
            peer = statistics.median([await kubectl_get(kubeconfig) for _ in range(args.rounds)])

            async with async_playwright() as pw:
                browser = await pw.chromium.launch(executable_path=shutil.which("chromium") or "/usr/bin/chromium",
                                                   args=["--no-sandbox"])
                context = await browser.new_context()
                print(f"\n2. browser page load (navigation start -> load event, median of {args.rounds}); "
                      f"peer kubectl get workloads -o json: {1000 * peer:.0f} ms")
                tab = await context.new_page()
                for page in PAGES:
                    loads = []
                    for _ in range(args.rounds):
                        await tab.goto(url + page, wait_until="load")
                        loads.append(await tab.evaluate(
                            "(() => { const n = performance.getEntriesByType('navigation')[0];"
                            " return n.loadEventEnd - n.startTime; })()") / 1000)
                    median = statistics.median(loads)
                    print(f"   {page:<17} {1000 * median:7.1f} ms  (x{median / peer:.2f} of kubectl)")
                await tab.close()

                before = proxy.watches()
                tabs = [await context.new_page() for _ in range(3)]
                last = f"/workloads?page={(args.workloads + args.rounds - 1) // 200 + 1}"  # where the new ones go
                for t, page in zip(tabs, ("/", last, "/placement"), strict=True):
                    await t.goto(url + page)
                    await t.wait_for_selector("#conn[data-state=live]")
                await asyncio.sleep(2)
                opened = proxy.watches() - before
                print("\n3. watches seen by the API server with 3 tabs open (per-tab watching would be 3 per kind):")
                for path, open_now in sorted(proxy.open_watches.items()):
                    print(f"   {path:<58} open {open_now}  (new since the tabs opened: {opened.get(path, 0)})")

                delays = []
                workloads_tab = tabs[1]
                for i in range(args.rounds):
                    name = args.workloads + i
                    started = time.monotonic()
                    await kube.create(rest_paths.WORKLOADS, "default", workload(name))
                    await workloads_tab.wait_for_selector(f'tr[data-workload="w-{name:04d}"]', timeout=10_000)
                    delays.append(time.monotonic() - started)
                print(f"\n4. create -> shown in an open tab with {args.workloads} workloads: median "
                      f"{1000 * statistics.median(delays):.0f} ms, max {1000 * max(delays):.0f} ms")
                await browser.close()
        finally:
            proc.terminate()
            await proc.wait()
            await proxy.stop()
            await kube.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workloads", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    os.environ.setdefault("PYTHONWARNINGS", "ignore::ResourceWarning")
    asyncio.run(main(parser.parse_args()))
