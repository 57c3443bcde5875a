"""The operator with real `wasmfleet host` processes serving a real wasm component over HTTP.

Everything is real here: nats-server, the embedded API server, three `wasmfleet host` processes
(heartbeat every 1 s) and the operator (host expiry 3 s, the documented failover setting).

Checks:
- `kubectl get hosts` lists the hosts with HOSTID / HOSTGROUP / READY columns.
- A 2-replica WorkloadDeployment of the hello component answers HTTP 200 on each replica's host
  (Host header = the wasi:http `host` config).
- kill -9 of a host running a replica: within 5 s both replicas answer HTTP again, on live hosts.
- Deleting the deployment stops the component on the hosts (HTTP 404 there) before the Workloads
  disappear.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import operator_harness as h
import pytest
from test_operator_placement import NS, cond, deployment, ready_workloads, workloads_of

from wasmfleet.kube import client, rest_paths
from wasmfleet.testing import nats as nats_helper

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.components.build import build_component, cache_dir

pytestmark = pytest.mark.timeout(180)
@pytest.fixture
def hello_wasm() -> Path:
    return build_component("hello-wat")


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[tuple[str, Path, h.HostProcesses]]:
    with nats_helper.running_nats_server(tmp_path / "nats") as url, h.apiserver(tmp_path / "api") as kubeconfig:
        hosts = h.HostProcesses(url, tmp_path, extra=("--allow-file-root", str(cache_dir())))
        try:
            yield url, kubeconfig, hosts
        finally:
            hosts.stop_all()


async def http_status(port: int, hostname: str) -> int:
    try:
        timeout = aiohttp.ClientTimeout(total=2)
        async with aiohttp.ClientSession(timeout=timeout) as s, s.get(
            f"http://127.0.0.1:{port}/", headers={"Host": hostname}
        ) as r:
            return r.status
    except (aiohttp.ClientError, TimeoutError):
        return 0


async def serving(kube: client.KubeClient, name: str, n: int, dead: set[str]) -> list[int] | None:
    """Ports of the hosts where `n` Ready replicas answer 200, none on a `dead` host."""
    ready = await ready_workloads(kube, name, n)
    if not ready:
        return None
    hosts, _ = await kube.list(rest_paths.HOSTS, NS)
    port_of = {x["hostId"]: x["httpPort"] for x in hosts}
    ports = []
    for w in ready:
        host_id = w["status"]["hostId"]
        if host_id in dead or await http_status(port_of[host_id], f"{name}.localhost") != 200:
            return None
        ports.append(port_of[host_id])
    return ports


async def test_real_hosts_serve_fail_over_and_clean_up(fleet: Any, hello_wasm: Path, tmp_path: Path) -> None:
    url, kubeconfig, procs = fleet
    for name in ("amber-falcon-0001", "amber-falcon-0002", "amber-falcon-0003"):
        procs.start(name)
    kube = await h.kube_client(kubeconfig)
    cfg = h.operator_settings(kubeconfig, url, expiry_s=3.0)
    async with h.running_operator(cfg):
        async def three_hosts() -> bool:
            items, _ = await kube.list(rest_paths.HOSTS, NS)
            return len([x for x in items if cond(x, "Ready") == "True"]) == 3

        await h.eventually(three_hosts, timeout_s=30, what="3 real hosts Ready")
        table = subprocess.run([str(Path(sys.executable).parent / "kubectl"), "--kubeconfig", str(kubeconfig),
                                "get", "hosts"], capture_output=True, text=True, check=True).stdout
        assert "HOSTID" in table and "HOSTGROUP" in table and "amber-falcon-0002" in table

        wd = deployment("hello", replicas=2, workload={
            "components": [{"name": "hello", "image": f"file://{hello_wasm}"}]})
        await kube.create(rest_paths.DEPLOYMENTS, NS, wd)
        ports = await h.eventually(lambda: serving(kube, "hello", 2, set()), timeout_s=60, what="2 replicas serving")
        assert len(set(ports)) == 2  # spread over two hosts

        victim_wl = (await workloads_of(kube, "hello"))[0]
        victim_id = victim_wl["status"]["hostId"]
        hosts, _ = await kube.list(rest_paths.HOSTS, NS)
        victim = next(x["metadata"]["name"] for x in hosts if x["hostId"] == victim_id)
        killed = time.monotonic()
        procs.kill(victim)
        await h.eventually(lambda: serving(kube, "hello", 2, {victim_id}), timeout_s=15, what="serving elsewhere")
        took = time.monotonic() - killed
        assert took <= 5.0, f"failover with real hosts took {took:.2f}s"

        ready = await ready_workloads(kube, "hello", 2)
        assert ready is not None
        hosts, _ = await kube.list(rest_paths.HOSTS, NS)
        port_of = {x["hostId"]: x["httpPort"] for x in hosts}
        serving_ports = [port_of[w["status"]["hostId"]] for w in ready]
        await kube.delete(rest_paths.DEPLOYMENTS, NS, "hello")

        async def cleaned() -> bool:
            if await workloads_of(kube, "hello"):
                return False
            return all([await http_status(p, "hello.localhost") == 404 for p in serving_ports])

        await h.eventually(cleaned, timeout_s=20, what="workloads stopped on hosts and deleted")
    await kube.close()
