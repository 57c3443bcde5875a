"""Rollouts and Artifacts (real embedded API server, real nats-server, FakeHost responders).

Checks:
- RollingUpdate: a template change creates a new ReplicaSet <wd>-<newhash>; the old replicas stay
  Ready (and serving) until the new ones are Ready; then the old ReplicaSet and its Workloads go.
- Recreate: old replicas are all gone before any new replica exists.
- Artifact: status.artifactUrl is published (Sync/Published/Ready True); `artifact://<name>` images
  resolve to it in the start request; changing the Artifact's image rolls the deployment; deleting
  an Artifact still referenced is held by its finalizer until the deployment is gone.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import operator_harness as h
import pytest
from test_operator_placement import NS, cond, deployment, ready_workloads, workloads_of

from wasmfleet.kube import client, errors, rest_paths
from wasmfleet.testing import nats as nats_helper

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
async def env(tmp_path: Path) -> Any:
    with nats_helper.running_nats_server(tmp_path / "nats") as url, h.apiserver(tmp_path / "api") as kubeconfig:
        kube = await h.kube_client(kubeconfig)
        hosts = [await h.FakeHost(url, f"pale-ibis-000{i}", start_delay_s=0.8).start() for i in range(2)]
        try:
            async with h.running_operator(h.operator_settings(kubeconfig, url)):
                yield kube, hosts
        finally:
            for x in hosts:
                await x.kill()
            await kube.close()


def owner(w: dict[str, Any]) -> str:
    return str(w["metadata"]["ownerReferences"][0]["name"])


async def set_image(kube: client.KubeClient, name: str, image: str) -> None:
    wd = await kube.get(rest_paths.DEPLOYMENTS, NS, name)
    comps = wd["spec"]["template"]["spec"]["components"]
    comps[0]["image"] = image
    await kube.patch(rest_paths.DEPLOYMENTS, NS, name, {"spec": {"template": {"spec": {"components": comps}}}})


async def watch_sets(kube: client.KubeClient, name: str, done: asyncio.Event, seen: list[dict[str, Any]]) -> None:
    """Record, every 50 ms, which ReplicaSets own live (and Ready) Workloads."""
    while not done.is_set():
        items = await workloads_of(kube, name)
        seen.append({
            "all": {owner(w) for w in items},
            "ready": {owner(w) for w in items if cond(w, "Ready") == "True"},
        })
        await asyncio.sleep(0.05)


async def test_rolling_update_keeps_old_replicas_until_new_are_ready(env: Any) -> None:
    kube, _hosts = env
    await kube.create(rest_paths.DEPLOYMENTS, NS, deployment("roll", replicas=2))
    first = await h.eventually(lambda: ready_workloads(kube, "roll", 2), what="2 ready")
    old_rs = owner(first[0])
    done, seen = asyncio.Event(), []
    watcher = asyncio.create_task(watch_sets(kube, "roll", done, seen))
    await set_image(kube, "roll", "file:///tmp/v2.wasm")

    async def rolled() -> Any:
        ready = await ready_workloads(kube, "roll", 2)
        return ready and {owner(w) for w in ready} != {old_rs} and ready

    new = await h.eventually(rolled, what="new replicas ready, old gone")
    done.set()
    await watcher
    new_rs = owner(new[0])
    assert new_rs.startswith("roll-") and new_rs != old_rs
    # While the new set was not Ready yet, the old one kept its Ready replicas.
    overlap = [s for s in seen if new_rs in s["all"] and new_rs not in s["ready"]]
    assert overlap and all(old_rs in s["ready"] for s in overlap)
    with pytest.raises(errors.NotFound):
        await kube.get(rest_paths.REPLICASETS, NS, old_rs)
    wd = await kube.get(rest_paths.DEPLOYMENTS, NS, "roll")
    assert wd["status"]["currentReplicaSet"] == new_rs
    assert wd["status"]["previousReplicaSet"] == old_rs


async def test_recreate_removes_old_replicas_before_new_ones(env: Any) -> None:
    kube, _hosts = env
    await kube.create(rest_paths.DEPLOYMENTS, NS, deployment("recr", replicas=2, deployPolicy="Recreate"))
    first = await h.eventually(lambda: ready_workloads(kube, "recr", 2), what="2 ready")
    old_rs = owner(first[0])
    done, seen = asyncio.Event(), []
    watcher = asyncio.create_task(watch_sets(kube, "recr", done, seen))
    await set_image(kube, "recr", "file:///tmp/v2.wasm")

    async def rolled() -> Any:
        ready = await ready_workloads(kube, "recr", 2)
        return ready and {owner(w) for w in ready} != {old_rs}

    await h.eventually(rolled, what="recreated")
    done.set()
    await watcher
    assert not [s for s in seen if len(s["all"]) > 1], "old and new replicas coexisted"


async def test_artifact_resolution_rollout_and_deletion_guard(env: Any) -> None:
    kube, hosts = env
    art = {"apiVersion": "runtime.wasmcloud.dev/v1alpha1", "kind": "Artifact",
           "metadata": {"name": "app", "namespace": NS}, "spec": {"image": "file:///tmp/app-v1.wasm"}}
    await kube.create(rest_paths.ARTIFACTS, NS, art)

    async def published() -> Any:
        obj = await kube.get(rest_paths.ARTIFACTS, NS, "app")
        return cond(obj, "Ready") == "True" and obj

    obj = await h.eventually(published, what="artifact published")
    assert obj["status"]["artifactUrl"] == "file:///tmp/app-v1.wasm"
    assert [c["type"] for c in obj["status"]["conditions"]] == ["Sync", "Published", "Ready"]

    wd = deployment("art", workload={"components": [{"name": "c", "image": "artifact://bin"}]})
    wd["spec"]["artifacts"] = [{"name": "bin", "artifactFrom": {"name": "app"}}]
    await kube.create(rest_paths.DEPLOYMENTS, NS, wd)
    ready = await h.eventually(lambda: ready_workloads(kube, "art", 1), what="ready")

    def image_of(uid: str) -> str:
        req = next(x.workloads[uid] for x in hosts if uid in x.workloads)
        return req.workload.wit_world.components[0].image

    assert image_of(ready[0]["metadata"]["uid"]) == "file:///tmp/app-v1.wasm"
    await kube.patch(rest_paths.ARTIFACTS, NS, "app", {"spec": {"image": "file:///tmp/app-v2.wasm"}})

    async def rolled() -> Any:
        r = await ready_workloads(kube, "art", 1)
        return r and r[0]["metadata"]["uid"] != ready[0]["metadata"]["uid"] and r

    new = await h.eventually(rolled, what="artifact change rolled the deployment")
    assert image_of(new[0]["metadata"]["uid"]) == "file:///tmp/app-v2.wasm"

    await kube.delete(rest_paths.ARTIFACTS, NS, "app")
    await asyncio.sleep(1.0)
    held = await kube.get(rest_paths.ARTIFACTS, NS, "app")
    assert held["metadata"].get("deletionTimestamp")
    await kube.delete(rest_paths.DEPLOYMENTS, NS, "art")

    async def artifact_gone() -> bool:
        try:
            await kube.get(rest_paths.ARTIFACTS, NS, "app")
            return False
        except errors.NotFound:
            return True

    await h.eventually(artifact_gone, what="artifact deleted once unreferenced")
