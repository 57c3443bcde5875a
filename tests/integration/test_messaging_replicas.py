"""Replicas of one WorkloadDeployment share its messages: the default queue group is per deployment.

Everything is real: nats-server, the embedded API server, the operator (in this process) and two
`wasmfleet host` processes. The handler is tests/components/messaging-wat, which publishes every
message it handles (not a request) unchanged to the subject "handled".

Checks:
- a 2-replica WorkloadDeployment, one replica per host, with no consumer_group: each of N messages
  is handled exactly once across the two replicas (counted on "handled"), not once per replica;
- an explicit consumer_group still wins: "broadcast" on a 2-replica deployment hands every
  message to both replicas (each handled exactly twice).
"""

from __future__ import annotations

import asyncio
import collections
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nats
import operator_harness as h
import pytest
from test_operator_placement import NS, cond, ready_workloads

from wasmfleet.kube import client, rest_paths
from wasmfleet.testing import nats as nats_helper

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.components.build import build_component, cache_dir

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[tuple[str, Path, h.HostProcesses]]:
    with nats_helper.running_nats_server(tmp_path / "nats") as url, h.apiserver(tmp_path / "api") as kubeconfig:
        hosts = h.HostProcesses(url, tmp_path, extra=("--allow-file-root", str(cache_dir())))
        try:
            yield url, kubeconfig, hosts
        finally:
            hosts.stop_all()


def handler_deployment(name: str, image: Path, config: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "runtime.wasmcloud.dev/v1alpha1",
        "kind": "WorkloadDeployment",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"replicas": 2, "template": {"spec": {
            "components": [{"name": "handler", "image": f"file://{image}"}],
            "hostInterfaces": [{"namespace": "wasmcloud", "package": "messaging", "version": "0.2.0",
                                "interfaces": ["handler", "consumer"], "config": config}],
        }}},
    }


async def spread_and_ready(kube: client.KubeClient, name: str) -> bool:
    """Both replicas Ready (their subscriptions are live), on two different hosts."""
    ready = await ready_workloads(kube, name, 2)
    return bool(ready) and len({w["status"]["hostId"] for w in ready or []}) == 2


async def handled_counts(nc: Any, subject_prefix: str, total: int, expected_each: int) -> collections.Counter[bytes]:
    """Publishes `total` messages on <prefix>.<i % 5> and counts what the handlers pass on."""
    seen: collections.Counter[bytes] = collections.Counter()

    async def collect(msg: Any) -> None:
        seen[msg.data] += 1

    sub = await nc.subscribe("handled", cb=collect)
    await nc.flush()
    for i in range(total):
        await nc.publish(f"{subject_prefix}.{i % 5}", f"{subject_prefix}-{i}".encode())
    await nc.flush()

    async def all_in() -> bool:
        return sum(seen.values()) >= total * expected_each

    await h.eventually(all_in, timeout_s=30, what=f"{total * expected_each} handled messages")
    await asyncio.sleep(1.0)  # a duplicate would arrive now
    await sub.unsubscribe()
    return seen


async def test_replicas_share_the_default_queue_group_and_explicit_group_wins(fleet: Any) -> None:
    url, kubeconfig, procs = fleet
    image = build_component("messaging-wat")
    for name in ("quiet-heron-0001", "quiet-heron-0002"):
        procs.start(name)
    kube = await h.kube_client(kubeconfig)
    nc = await nats.connect(url)
    try:
        async with h.running_operator(h.operator_settings(kubeconfig, url, expiry_s=3.0)):
            async def two_hosts() -> bool:
                items, _ = await kube.list(rest_paths.HOSTS, NS)
                return len([x for x in items if cond(x, "Ready") == "True"]) == 2

            await h.eventually(two_hosts, timeout_s=60, what="2 real hosts Ready")

            jobs = handler_deployment("jobs", image, {"subscriptions": "jobs.>"})
            await kube.create(rest_paths.DEPLOYMENTS, NS, jobs)
            await h.eventually(lambda: spread_and_ready(kube, "jobs"), timeout_s=90, what="2 jobs replicas")
            total = 100
            seen = await handled_counts(nc, "jobs", total, expected_each=1)
            assert seen == collections.Counter({f"jobs-{i}".encode(): 1 for i in range(total)}), \
                f"messages handled more than once: {sorted(k for k, v in seen.items() if v > 1)[:5]}"

            await kube.create(rest_paths.DEPLOYMENTS, NS, handler_deployment(
                "news", image, {"subscriptions": "news.>", "consumer_group": "broadcast"}))
            await h.eventually(lambda: spread_and_ready(kube, "news"), timeout_s=90, what="2 news replicas")
            seen = await handled_counts(nc, "news", 40, expected_each=2)
            assert seen == collections.Counter({f"news-{i}".encode(): 2 for i in range(40)})
    finally:
        await nc.close()
        await kube.close()
