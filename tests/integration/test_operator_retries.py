"""Which failures the operator retries (real embedded API server, real nats-server, FakeHost).

The host says whether a failed start may succeed later (`retryable` in WorkloadStatus: a registry
answering 503 may recover, an image that does not exist will not). FakeHost answers starts with a
chosen error and `retryable` flag (see operator_harness.py).

Checks:
- A start that failed with retryable=False is not retried, whatever else triggers the Workload:
  Placement is False with reason StartFailedPermanently, and the host sees one start only; once the
  Workload's spec changes it is started again (and runs).
- A start that failed with retryable=True is retried with growing delays (reason StartFailed, the
  message says it is retried), however often other events trigger the Workload, and the workload
  runs once the host can start it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import operator_harness as h
import pytest

from wasmfleet.kube import client, rest_paths
from wasmfleet.testing import nats as nats_helper

pytestmark = pytest.mark.timeout(120)
NS = "default"


def workload(name: str, image: str) -> dict[str, Any]:
    return {
        "apiVersion": "runtime.wasmcloud.dev/v1alpha1", "kind": "Workload",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"components": [{"name": "c", "image": image}]},
    }


async def placement(kube: client.KubeClient, name: str) -> dict[str, Any]:
    obj = await kube.get(rest_paths.WORKLOADS, NS, name)
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == "Placement"), {})


async def test_a_start_the_host_calls_hopeless_waits_for_a_spec_change(tmp_path: Path) -> None:
    with nats_helper.running_nats_server(tmp_path / "nats") as url, h.apiserver(tmp_path / "api") as kubeconfig:
        kube = await h.kube_client(kubeconfig)
        host = await h.FakeHost(url, "sour-plum-0001", fail_start="image not found (404)").start()
        async with h.running_operator(h.operator_settings(kubeconfig, url, sync_interval_s=1.0)):
            await kube.create(rest_paths.WORKLOADS, NS, workload("nope", "oci://r.example/missing:1"))

            async def refused() -> Any:
                cond = await placement(kube, "nope")
                return cond.get("reason") == "StartFailedPermanently" and cond

            cond = await h.eventually(refused, what="Placement StartFailedPermanently")
            assert cond["status"] == "False" and "image not found (404)" in cond["message"]
            await asyncio.sleep(3.0)  # sync interval 1 s, host heartbeats: plenty of triggers
            assert host.starts == 1
            host.fail_start = ""
            await kube.patch(rest_paths.WORKLOADS, NS, "nope",
                             {"spec": {"components": [{"name": "c", "image": "oci://r.example/present:1"}]}})

            async def running() -> Any:
                cond = await placement(kube, "nope")
                return cond.get("status") == "True"

            await h.eventually(running, what="started after the spec changed")
            assert host.starts == 2
        await host.kill()
        await kube.close()


async def test_a_start_that_may_succeed_later_is_retried_with_backoff(tmp_path: Path) -> None:
    with nats_helper.running_nats_server(tmp_path / "nats") as url, h.apiserver(tmp_path / "api") as kubeconfig:
        kube = await h.kube_client(kubeconfig)
        host = await h.FakeHost(url, "ripe-fig-0001", fail_start="registry answered 503",
                                fail_retryable=True).start()
        async with h.running_operator(h.operator_settings(kubeconfig, url)):
            await kube.create(rest_paths.WORKLOADS, NS, workload("later", "oci://r.example/app:1"))

            async def retried() -> Any:
                return host.starts >= 3 and await placement(kube, "later")

            cond = await h.eventually(retried, timeout_s=15, what="three start attempts")
            assert cond["reason"] == "StartFailed" and "retried with backoff" in cond["message"]
            await asyncio.sleep(1.0)
            assert host.starts <= 5, "retries must back off"
            host.fail_start = ""

            async def running() -> Any:
                return (await placement(kube, "later")).get("status") == "True"

            await h.eventually(running, timeout_s=40, what="running once the host can start it")
        await host.kill()
        await kube.close()
