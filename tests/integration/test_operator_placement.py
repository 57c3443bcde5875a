"""Operator placement against the real embedded API server and a real nats-server.

Hosts here are `FakeHost` protocol responders on the real NATS (tests/integration/operator_harness.py):
these tests are about the operator's decisions, not about running wasm (test_operator_hosts.py uses
real `wasmfleet host` processes).

Checks:
- Host objects appear from heartbeats (name = friendly name, labels incl. hostgroup, top-level
  hostId/hostname/httpPort, conditions Reporting/Ready True).
- A WorkloadDeployment yields a ReplicaSet named <wd>-<hash> and one Workload per replica, owned via
  ownerReferences, spread across hosts, each with conditions Config..Ready True in order.
- Scale up and down (through /scale too); status.replicas counts follow.
- hostSelector restricts placement; no matching host -> HostSelection False naming the filter, and
  a FailedScheduling Event; the workload is placed once a matching host appears.
- A host lacking a requested interface is refused.
- ConfigMaps in configFrom are resolved into the start request.
- Deleting a Workload stops it on its host before the object disappears (finalizer).
- A standalone Workload pinned with spec.hostId runs there; re-pinning moves it (stopped on the old host).
- The host's per-component status (role, state, message) is copied into the Workload's status.components.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import operator_harness as h
import pytest

from wasmfleet.kube import client, errors, rest_paths
from wasmfleet.testing import nats as nats_helper

pytestmark = pytest.mark.timeout(120)

NS = "default"


def deployment(name: str, replicas: int = 1, **spec_extra: Any) -> dict[str, Any]:
    wspec: dict[str, Any] = {
        "components": [{"name": "hello", "image": "file:///tmp/hello.wasm"}],
        "hostInterfaces": [
            {"namespace": "wasi", "package": "http", "interfaces": ["incoming-handler"],
             "config": {"host": f"{name}.localhost"}},
        ],
    }
    wspec.update(spec_extra.pop("workload", {}))
    return {
        "apiVersion": "runtime.wasmcloud.dev/v1alpha1",
        "kind": "WorkloadDeployment",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"replicas": replicas, "template": {"spec": wspec}, **spec_extra},
    }


def cond(obj: dict[str, Any], type_: str) -> str:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c["type"] == type_:
            return str(c["status"])
    return ""


async def workloads_of(kube: client.KubeClient, wd: str) -> list[dict[str, Any]]:
    items, _ = await kube.list(rest_paths.WORKLOADS, NS, f"runtime.wasmcloud.dev/workload-deployment={wd}")
    return [w for w in items if not w["metadata"].get("deletionTimestamp")]


async def ready_workloads(kube: client.KubeClient, wd: str, n: int) -> list[dict[str, Any]] | None:
    items = await workloads_of(kube, wd)
    ready = [w for w in items if cond(w, "Ready") == "True"]
    return ready if len(ready) == n and len(items) == n else None


@pytest.fixture
async def fleet(tmp_path: Path) -> Any:
    with nats_helper.running_nats_server(tmp_path / "nats") as url, h.apiserver(tmp_path / "api") as kubeconfig:
        kube = await h.kube_client(kubeconfig)
        try:
            yield url, kubeconfig, kube
        finally:
            await kube.close()


async def test_hosts_and_deployment_spread_scale_and_delete(fleet: Any) -> None:
    url, kubeconfig, kube = fleet
    hosts = [await h.FakeHost(url, f"brave-otter-000{i}", labels={"zone": f"z{i}"}).start() for i in range(3)]
    async with h.running_operator(h.operator_settings(kubeconfig, url)):
        # Host objects mirror heartbeats.
        async def hosts_ready() -> Any:
            items, _ = await kube.list(rest_paths.HOSTS, NS)
            return len([x for x in items if cond(x, "Ready") == "True"]) == 3 and items

        items = await h.eventually(hosts_ready, what="3 Ready hosts")
        host = next(x for x in items if x["metadata"]["name"] == "brave-otter-0000")
        assert host["hostId"] == hosts[0].host_id
        assert host["hostname"] == "127.0.0.1" and host["httpPort"] == 18000
        assert host["metadata"]["labels"] == {"hostgroup": "default", "zone": "z0"}
        assert [c["type"] for c in host["status"]["conditions"]] == ["Reporting", "Ready"]

        await kube.create(rest_paths.DEPLOYMENTS, NS, deployment("web", replicas=3))
        ready = await h.eventually(lambda: ready_workloads(kube, "web", 3), what="3 ready replicas")
        # One replica per host (spread), all owned by the same ReplicaSet named <wd>-<hash>.
        assert len({w["status"]["hostId"] for w in ready}) == 3
        owners = {w["metadata"]["ownerReferences"][0]["name"] for w in ready}
        assert len(owners) == 1 and owners.pop().startswith("web-")
        assert [c["type"] for c in ready[0]["status"]["conditions"]] == [
            "Config", "HostSelection", "Placement", "Sync", "Ready"]
        assert ready[0]["status"]["workloadId"] == ready[0]["metadata"]["uid"]
        assert sum(len(x.workloads) for x in hosts) == 3

        async def wd_ready(n: int) -> Any:
            wd = await kube.get(rest_paths.DEPLOYMENTS, NS, "web")
            st = wd.get("status") or {}
            return cond(wd, "Ready") == "True" and st.get("replicas", {}).get("ready") == n and wd

        wd = await h.eventually(lambda: wd_ready(3), what="deployment Ready")
        assert wd["status"]["selector"] == "runtime.wasmcloud.dev/workload-deployment=web"
        assert wd["status"]["currentReplicaSet"].startswith("web-")

        # Scale down through the /scale subresource.
        scale = await kube.get(rest_paths.DEPLOYMENTS, NS, "web") and await kube._call(
            "GET", rest_paths.DEPLOYMENTS.path(NS, "web", "scale"))
        scale["spec"]["replicas"] = 1
        await kube._call("PUT", rest_paths.DEPLOYMENTS.path(NS, "web", "scale"), body=scale)
        await h.eventually(lambda: ready_workloads(kube, "web", 1), what="1 replica after scale down")
        await h.eventually(lambda: wd_ready(1), what="deployment status follows")

        async def stopped_on_hosts() -> bool:
            return sum(len(x.workloads) for x in hosts) == 1

        await h.eventually(stopped_on_hosts, what="removed replicas stopped on hosts (finalizer)")

        # Scale up again with a plain patch.
        await kube.patch(rest_paths.DEPLOYMENTS, NS, "web", {"spec": {"replicas": 2}})
        await h.eventually(lambda: ready_workloads(kube, "web", 2), what="2 replicas after scale up")

        # Deleting a Workload directly: stopped on its host, then gone; the ReplicaSet replaces it.
        victim = (await workloads_of(kube, "web"))[0]
        await kube.delete(rest_paths.WORKLOADS, NS, victim["metadata"]["name"])

        async def victim_gone() -> bool:
            try:
                await kube.get(rest_paths.WORKLOADS, NS, victim["metadata"]["name"])
                return False
            except errors.NotFound:
                return all(victim["metadata"]["uid"] not in x.workloads for x in hosts)

        await h.eventually(victim_gone, what="workload stopped and deleted")
        await h.eventually(lambda: ready_workloads(kube, "web", 2), what="replacement replica")
    for x in hosts:
        await x.kill()


async def test_host_selector_no_match_then_match_and_interface_refusal(fleet: Any) -> None:
    url, kubeconfig, kube = fleet
    plain = await h.FakeHost(url, "calm-heron-0001").start()
    async with h.running_operator(h.operator_settings(kubeconfig, url)):
        edge = deployment("edge", workload={"hostSelector": {"hostgroup": "edge"}})
        await kube.create(rest_paths.DEPLOYMENTS, NS, edge)

        async def unschedulable() -> Any:
            items = await workloads_of(kube, "edge")
            if not items or cond(items[0], "HostSelection") != "False":
                return None
            return items[0]

        wl = await h.eventually(unschedulable, what="HostSelection False")
        msg = next(c for c in wl["status"]["conditions"] if c["type"] == "HostSelection")["message"]
        assert "HostSelector excluded calm-heron-0001" in msg and "hostgroup=edge" in msg
        assert cond(wl, "Ready") == "False"

        async def failed_scheduling_event() -> Any:
            evs, _ = await kube.list(rest_paths.EVENTS, NS)
            return [e for e in evs if e["reason"] == "FailedScheduling"
                    and e["involvedObject"]["name"] == wl["metadata"]["name"]]

        evs = await h.eventually(failed_scheduling_event, what="FailedScheduling event")
        assert "HostSelector excluded calm-heron-0001" in evs[0]["message"]

        edge = await h.FakeHost(url, "keen-lynx-0002", labels={"hostgroup": "edge"}).start()
        ready = await h.eventually(lambda: ready_workloads(kube, "edge", 1), what="placed on the edge host")
        assert ready[0]["status"]["hostId"] == edge.host_id

        # A workload asking for an interface is refused by hosts that do not advertise it (every real
        # host has wasi:keyvalue now: a third-party plugin's interface stands in).
        kv = {"namespace": "acme", "package": "widgets", "interfaces": ["gadget"], "version": "0.1.0"}
        await kube.create(rest_paths.DEPLOYMENTS, NS, deployment("kv", workload={"hostInterfaces": [kv]}))

        async def refused() -> Any:
            items = await workloads_of(kube, "kv")
            return items and cond(items[0], "HostSelection") == "False" and items[0]

        wl = await h.eventually(refused, what="interface refusal")
        msg = next(c for c in wl["status"]["conditions"] if c["type"] == "HostSelection")["message"]
        assert "Interfaces excluded" in msg and "acme:widgets/gadget@0.1.0" in msg
        kvhost = await h.FakeHost(url, "wise-crane-0003",
                                  plugin_interfaces=[("acme", "widgets", ["gadget"], "0.1.0")]).start()
        ready = await h.eventually(lambda: ready_workloads(kube, "kv", 1), what="placed on the kv host")
        assert ready[0]["status"]["hostId"] == kvhost.host_id
        for x in (plain, edge, kvhost):
            await x.kill()


async def test_config_from_configmap_is_resolved_and_change_restarts(fleet: Any) -> None:
    url, kubeconfig, kube = fleet
    host = await h.FakeHost(url, "quiet-mole-0001").start()
    async with h.running_operator(h.operator_settings(kubeconfig, url)):
        workload = {"components": [{"name": "c", "image": "file:///tmp/x.wasm", "localResources": {
            "environment": {"config": {"A": "literal", "B": "literal"}, "configFrom": [{"name": "settings"}]}}}]}
        await kube.create(rest_paths.DEPLOYMENTS, NS, deployment("cfg", workload=workload))

        async def missing() -> Any:
            items = await workloads_of(kube, "cfg")
            return items and cond(items[0], "Config") == "False" and items[0]

        wl = await h.eventually(missing, what="Config False for the missing ConfigMap")
        assert "ConfigMap 'settings'" in wl["status"]["conditions"][0]["message"]
        await kube.create(rest_paths.CONFIGMAPS, NS, {"apiVersion": "v1", "kind": "ConfigMap",
                                                 "metadata": {"name": "settings"}, "data": {"B": "from-cm"}})
        ready = await h.eventually(lambda: ready_workloads(kube, "cfg", 1), what="ready once the ConfigMap exists")
        uid = ready[0]["metadata"]["uid"]
        env = host.workloads[uid].workload.wit_world.components[0].local_resources.environment
        assert env == {"A": "literal", "B": "from-cm"}

        await kube.patch(rest_paths.CONFIGMAPS, NS, "settings", {"data": {"B": "changed"}})

        async def restarted() -> bool:
            req = host.workloads.get(uid)
            env = req.workload.wit_world.components[0].local_resources.environment if req else {}
            return env.get("B") == "changed"

        await h.eventually(restarted, what="restart with the changed ConfigMap")
        await asyncio.sleep(0)
    await host.kill()


async def test_standalone_workload_pinned_to_a_host_gets_finalizer_and_is_stopped(fleet: Any) -> None:
    url, kubeconfig, kube = fleet
    hosts = [await h.FakeHost(url, f"lone-owl-000{i}").start() for i in range(3)]
    async with h.running_operator(h.operator_settings(kubeconfig, url)):
        body = deployment("x")["spec"]["template"]["spec"]
        body["hostId"] = hosts[2].host_id
        await kube.create(rest_paths.WORKLOADS, NS, {"apiVersion": "runtime.wasmcloud.dev/v1alpha1", "kind": "Workload",
                                               "metadata": {"name": "solo", "namespace": NS}, "spec": body})

        async def placed() -> Any:
            wl = await kube.get(rest_paths.WORKLOADS, NS, "solo")
            return cond(wl, "Ready") == "True" and wl

        wl = await h.eventually(placed, what="standalone workload Ready")
        assert wl["status"]["hostId"] == hosts[2].host_id
        assert "runtime.wasmcloud.dev/workload" in wl["metadata"]["finalizers"]
        assert wl["metadata"]["uid"] in hosts[2].workloads
        names = [c.get("name") for c in body["components"]]
        assert wl["status"]["components"] == [
            {"name": name, "role": "library", "state": "idle", "message": "fake host"} for name in names
        ]

        # Re-pinning moves it: stopped on the old host, running on the new one.
        await kube.patch(rest_paths.WORKLOADS, NS, "solo", {"spec": {"hostId": hosts[1].host_id}})

        async def moved() -> Any:
            wl = await kube.get(rest_paths.WORKLOADS, NS, "solo")
            return (cond(wl, "Ready") == "True" and wl["status"]["hostId"] == hosts[1].host_id
                    and not hosts[2].workloads and wl)

        await h.eventually(moved, what="moved to the newly pinned host")
        await kube.delete(rest_paths.WORKLOADS, NS, "solo")

        async def gone() -> bool:
            try:
                await kube.get(rest_paths.WORKLOADS, NS, "solo")
                return False
            except errors.NotFound:
                return not hosts[1].workloads

        await h.eventually(gone, what="stopped on its host, then deleted")
    for x in hosts:
        await x.kill()
