"""Multi-tenancy in placement, through the real operator, embedded API server and nats-server.

Hosts are `FakeHost` protocol responders (operator_harness.py): this checks the operator's choice.

Checks:
- Two namespaces, two host environments: each namespace's workloads land only on the host whose
  environment is that namespace (a workload's environment is spec.environment, else its namespace).
- A namespace with no host of its own is refused with HostSelection False naming the environment,
  and is placed once a host allowing shared hosting joins.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import operator_harness as h
import pytest

from wasmfleet.kube import rest_paths
from wasmfleet.scheduler.filters import SHARED_HOSTING_LABEL
from wasmfleet.testing import nats as nats_helper

pytestmark = pytest.mark.timeout(120)


def deployment(name: str, namespace: str, replicas: int) -> dict[str, Any]:
    return {
        "apiVersion": "runtime.wasmcloud.dev/v1alpha1",
        "kind": "WorkloadDeployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"replicas": replicas, "template": {"spec": {
            "components": [{"name": "hello", "image": "file:///tmp/hello.wasm"}],
            "hostInterfaces": [{"namespace": "wasi", "package": "http", "interfaces": ["incoming-handler"],
                                "config": {"host": f"{name}.{namespace}.localhost"}}],
        }}},
    }


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == type_), {})


async def test_each_namespace_runs_on_its_own_environment_and_shared_hosts_take_the_rest(tmp_path: Path) -> None:
    with nats_helper.running_nats_server(tmp_path / "nats") as url, h.apiserver(tmp_path / "api") as kubeconfig:
        kube = await h.kube_client(kubeconfig)
        hosts = []
        try:
            for ns in ("team-a", "team-b", "team-c"):
                await kube.create(rest_paths.NAMESPACES, None,
                                  {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
            a = await h.FakeHost(url, "tidy-ant-0001", environment="team-a").start()
            b = await h.FakeHost(url, "tidy-bee-0002", environment="team-b").start()
            hosts += [a, b]
            async with h.running_operator(h.operator_settings(kubeconfig, url)):
                for ns in ("team-a", "team-b"):
                    await kube.create(rest_paths.DEPLOYMENTS, ns, deployment("app", ns, 2))
                await kube.create(rest_paths.DEPLOYMENTS, "team-c", deployment("app", "team-c", 1))

                async def placed(ns: str, n: int) -> list[str] | None:
                    items, _ = await kube.list(rest_paths.WORKLOADS, ns)
                    ready = [w["status"]["hostId"] for w in items if condition(w, "Ready").get("status") == "True"]
                    return ready if len(ready) == n else None

                assert set(await h.eventually(lambda: placed("team-a", 2), what="team-a Ready")) == {a.host_id}
                assert set(await h.eventually(lambda: placed("team-b", 2), what="team-b Ready")) == {b.host_id}

                async def refused() -> str | None:
                    items, _ = await kube.list(rest_paths.WORKLOADS, "team-c")
                    sel = condition(items[0], "HostSelection") if items else {}
                    return sel.get("message") if sel.get("status") == "False" else None

                message = await h.eventually(refused, what="team-c refused")
                assert "environment" in message and "team-c" in message, message

                shared = await h.FakeHost(url, "kind-cat-0003", environment="team-a",
                                          labels={SHARED_HOSTING_LABEL: "true"}).start()
                hosts.append(shared)
                assert await h.eventually(lambda: placed("team-c", 1), what="team-c on the shared host") == [
                    shared.host_id]
        finally:
            for x in hosts:
                await x.kill()
            await kube.close()
