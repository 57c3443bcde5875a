"""Two `wasmfleet operator` processes at once, and the operator's HTTP endpoints.

Real processes (the CLI), the real embedded API server and a real nats-server; hosts are FakeHost
responders on that NATS.

Checks:
- /healthz answers 200; /readyz answers 200 once caches are synced and NATS is connected.
- Only one process leads (wasmfleet_operator_leader 1 on exactly one /metrics); it reconciles.
- After kill -9 of the leader, the standby takes over within the lease duration and reconciles a
  deployment created after the kill.
- /metrics exposes reconciles by controller and result, heartbeats and hosts by state.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import operator_harness as h
import pytest
from test_operator_placement import NS, deployment, ready_workloads

from wasmfleet.kube import rest_paths
from wasmfleet.testing import nats as nats_helper

pytestmark = pytest.mark.timeout(120)


@contextlib.contextmanager
def operator_process(
    kubeconfig: Path, url: str, port: int, identity: str, log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    args = [str(Path(sys.executable).parent / "wasmfleet"), "operator", "--kubeconfig", str(kubeconfig),
            "--nats", url, "--listen", f"127.0.0.1:{port}", "--identity", identity,
            "--lease-duration", "3", "--host-expiry", "1.5"]
    with open(log, "ab") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


async def get(port: int, path: str) -> tuple[int, str]:
    try:
        async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}{path}") as r:
            return r.status, await r.text()
    except aiohttp.ClientError:
        return 0, ""


def metric(text: str, name: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return None


async def test_one_leader_and_takeover_after_kill(tmp_path: Path) -> None:
    with nats_helper.running_nats_server(tmp_path / "nats") as url, h.apiserver(tmp_path / "api") as kubeconfig:
        kube = await h.kube_client(kubeconfig)
        host = await h.FakeHost(url, "fair-crow-0001").start()
        try:  # a failure must not leave the session and the fake host's connection to the GC
            ports = [nats_helper.free_port(), nats_helper.free_port()]
            with operator_process(kubeconfig, url, ports[0], "op-a", tmp_path / "a.log") as a, \
                    operator_process(kubeconfig, url, ports[1], "op-b", tmp_path / "b.log") as b:
                async def both_ready() -> bool:
                    return [(await get(p, "/readyz"))[0] for p in ports] == [200, 200]

                await h.eventually(both_ready, timeout_s=30, what="both /readyz 200")
                assert (await get(ports[0], "/healthz"))[0] == 200

                async def one_leader() -> list[float] | None:
                    values = [metric((await get(p, "/metrics"))[1], "wasmfleet_operator_leader") for p in ports]
                    return values if sorted(v or 0 for v in values) == [0, 1] else None

                values = await h.eventually(one_leader, what="exactly one leader")
                leader = a if values[0] == 1 else b
                standby_port = ports[1] if leader is a else ports[0]

                await kube.create(rest_paths.DEPLOYMENTS, NS, deployment("first"))
                await h.eventually(lambda: ready_workloads(kube, "first", 1), what="leader reconciles")
                text = (await get(standby_port, "/metrics"))[1]
                assert metric(text, "wasmfleet_operator_leader") == 0
                assert (metric(text, "wasmfleet_operator_heartbeats_total") or 0) > 0  # standby listens too

                leader.kill()  # SIGKILL: no lease release
                leader.wait()
                killed = time.monotonic()
                await kube.create(rest_paths.DEPLOYMENTS, NS, deployment("second"))
                await h.eventually(lambda: ready_workloads(kube, "second", 1), timeout_s=20, what="standby takes over")
                took = time.monotonic() - killed
                assert took < 3 + 3 + 2, f"takeover took {took:.1f}s"
                text = (await get(standby_port, "/metrics"))[1]
                assert metric(text, "wasmfleet_operator_leader") == 1
                assert 'wasmfleet_operator_reconciles_total{controller="workloads"' in text
                assert metric(text, 'wasmfleet_operator_hosts{state="alive"}') == 1
                await asyncio.sleep(0)
        finally:
            await host.kill()
            await kube.close()
