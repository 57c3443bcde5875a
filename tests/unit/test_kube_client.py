"""The kube/ controller core against a real embedded API server (`wasmfleet apiserver` subprocess).

Checks:
- CRUD, label-selected and paginated lists; API errors map to NotFound / Conflict / Invalid; an
  unreachable server raises Unreachable; a missing kubeconfig is a one-line ValueError.
- An informer syncs, reports ADDED / MODIFIED / DELETED, resumes a stopped watch from its last
  resourceVersion, and relists after 410 Gone (seeing deletions that happened meanwhile).
- Informers stopped while their watches stream (a process stopping) leave no socket to the garbage
  collector: the TLS connections are closed before the event loop ends.
- EventRecorder folds identical events into one Event whose count grows.
- Leader election: one of two candidates leads; the other takes over after the leader stops
  renewing (within the lease duration) and at once after a release.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import re
import warnings
from pathlib import Path
from typing import Any

import pytest

from wasmfleet.kube import client, errors, events, informing, leasing, rest_paths
from wasmfleet.testing import apiserver as apiserver_helper

pytestmark = pytest.mark.timeout(60)
NS = "default"


def cm(name: str, **labels: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": labels}, "data": {"k": "v"}}


@pytest.fixture(scope="module")
def kubeconfig(tmp_path_factory: pytest.TempPathFactory) -> Any:
    with apiserver_helper.running_apiserver(tmp_path_factory.mktemp("api"), "--watch-window", "100") as path:
        yield path


@pytest.fixture
async def kube(kubeconfig: Path) -> Any:
    k = await client.KubeClient.from_kubeconfig(kubeconfig)
    yield k
    await k.close()


async def test_crud_lists_and_error_mapping(kube: client.KubeClient) -> None:
    created = await kube.create(rest_paths.CONFIGMAPS, NS, cm("crud-a", app="x"))
    assert created["metadata"]["uid"]
    await kube.create(rest_paths.CONFIGMAPS, NS, cm("crud-b", app="y"))
    with pytest.raises(errors.Conflict):
        await kube.create(rest_paths.CONFIGMAPS, NS, cm("crud-a"))
    items, rv = await kube.list(rest_paths.CONFIGMAPS, NS, "app=x")
    assert [i["metadata"]["name"] for i in items] == ["crud-a"] and rv
    assert items[0]["kind"] == "ConfigMap"
    patched = await kube.patch(rest_paths.CONFIGMAPS, NS, "crud-a", {"data": {"k": "w"}})
    assert patched["data"] == {"k": "w"}
    await kube.delete(rest_paths.CONFIGMAPS, NS, "crud-a")
    await kube.delete(rest_paths.CONFIGMAPS, NS, "crud-a")  # already gone: not an error
    with pytest.raises(errors.NotFound):
        await kube.get(rest_paths.CONFIGMAPS, NS, "crud-a")
    bad = {"apiVersion": "runtime.wasmcloud.dev/v1alpha1", "kind": "Workload",
           "metadata": {"name": "bad"}, "spec": {"components": [{"name": "c"}]}}
    with pytest.raises(errors.Invalid) as info:
        await kube.create(rest_paths.WORKLOADS, NS, bad)
    assert not info.value.temporary


async def test_pagination_follows_continue(kube: client.KubeClient) -> None:
    for i in range(7):
        await kube.create(rest_paths.CONFIGMAPS, NS, cm(f"page-{i}", page="yes"))
    items, _ = await kube.list(rest_paths.CONFIGMAPS, NS, "page=yes")
    assert len(items) == 7


async def test_unreachable_and_bad_kubeconfig(tmp_path: Path, kubeconfig: Path) -> None:
    with pytest.raises(ValueError, match="cannot load kubeconfig"):
        await client.KubeClient.from_kubeconfig(tmp_path / "missing")
    text = kubeconfig.read_text()
    dead = tmp_path / "dead"
    dead.write_text(re.sub(r"server: https://127.0.0.1:\d+", "server: https://127.0.0.1:9", text))
    k = await client.KubeClient.from_kubeconfig(dead)
    try:
        with pytest.raises(errors.Unreachable):
            await k.get(rest_paths.CONFIGMAPS, NS, "x")
    finally:
        await k.close()


async def test_informer_events_resume_and_relist_after_gone(kube: client.KubeClient) -> None:
    seen: list[tuple[str, str]] = []
    inf = informing.Informer(kube, rest_paths.CONFIGMAPS, "inf", label_selector="")
    inf.add_handler(lambda ev, obj: seen.append((ev, obj["metadata"]["name"])))
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "inf"}}
    await kube.create(rest_paths.NAMESPACES, None, ns)
    await kube.create(rest_paths.CONFIGMAPS, "inf", cm("one"))
    task = asyncio.create_task(inf.run())
    await asyncio.wait_for(inf.wait_synced(), 10)
    assert ("ADDED", "one") in seen
    await kube.create(rest_paths.CONFIGMAPS, "inf", cm("two"))
    await kube.patch(rest_paths.CONFIGMAPS, "inf", "one", {"data": {"k": "changed"}})
    await kube.delete(rest_paths.CONFIGMAPS, "inf", "two")

    async def until(item: tuple[str, str]) -> None:
        while item not in seen:
            await asyncio.sleep(0.02)

    await asyncio.wait_for(until(("DELETED", "two")), 10)
    assert ("MODIFIED", "one") in seen and ("ADDED", "two") in seen
    assert inf.get("inf/one")["data"] == {"k": "changed"}  # type: ignore[index]
    # The server keeps field ownership; the cache leaves it out (nothing reads it, and it is large).
    assert (await kube.get(rest_paths.CONFIGMAPS, "inf", "one"))["metadata"]["managedFields"]
    assert all("managedFields" not in o["metadata"] for o in inf.list()), inf.list()

    # Stop, change a little, resume: no relist needed.
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await kube.create(rest_paths.CONFIGMAPS, "inf", cm("three"))
    task = asyncio.create_task(inf.run())
    await asyncio.wait_for(until(("ADDED", "three")), 10)
    assert inf.relists == 1

    # Stop, change more than the server's watch window, resume: 410 -> relist, deletions noticed.
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await kube.delete(rest_paths.CONFIGMAPS, "inf", "one")
    await asyncio.gather(*(kube.create(rest_paths.CONFIGMAPS, NS, cm(f"churn-{i}")) for i in range(110)))
    task = asyncio.create_task(inf.run())
    await asyncio.wait_for(until(("DELETED", "one")), 10)
    assert inf.relists == 2
    assert inf.get("inf/one") is None and inf.get("inf/three") is not None
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def test_stopped_informers_leave_no_socket_behind(kubeconfig: Path) -> None:
    async def start_and_stop(round_: int) -> None:
        kube = await client.KubeClient.from_kubeconfig(kubeconfig)
        infs = [informing.Informer(kube, rest_paths.CONFIGMAPS, NS) for _ in range(3)]
        tasks = [asyncio.create_task(inf.run()) for inf in infs]
        for inf in infs:
            await asyncio.wait_for(inf.wait_synced(), 10)
        # Once this arrives, every watch is streaming: stopping now interrupts the streams.
        await kube.create(rest_paths.CONFIGMAPS, NS, cm(f"stop-{round_}"))
        while any(inf.get(f"{NS}/stop-{round_}") is None for inf in infs):
            await asyncio.sleep(0.01)
        for task in tasks:
            task.cancel()
        await asyncio.wait(tasks)
        await kube.close()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        for round_ in range(3):  # each its own event loop, ended right after the client closed
            asyncio.run(start_and_stop(round_))
            gc.collect()
    leaks = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert not leaks, leaks


async def test_event_recorder_folds_repeats(kube: client.KubeClient) -> None:
    obj = await kube.create(rest_paths.CONFIGMAPS, NS, cm("evented"))
    rec = events.EventRecorder(kube)
    await rec.record(obj, "Warning", "FailedScheduling", "no suitable host found")
    await rec.record(obj, "Warning", "FailedScheduling", "no suitable host found")
    await events.EventRecorder(kube).record(obj, "Warning", "FailedScheduling", "no suitable host found")
    items, _ = await kube.list(rest_paths.EVENTS, NS)
    mine = [e for e in items if e["involvedObject"]["name"] == "evented"]
    assert len(mine) == 1
    assert mine[0]["count"] == 3 and mine[0]["type"] == "Warning" and mine[0]["reason"] == "FailedScheduling"


async def test_leader_election_takeover_and_release(kube: client.KubeClient) -> None:
    cfg = leasing.LeaseSettings(name="test-lease", lease_duration_s=2.0, renew_deadline_s=1.5, retry_period_s=0.2)
    a = leasing.LeaderElector(kube, "a", cfg)
    b = leasing.LeaderElector(kube, "b", cfg)
    ta = asyncio.create_task(a.run())
    await asyncio.wait_for(a.leading.wait(), 5)
    tb = asyncio.create_task(b.run())
    await asyncio.sleep(1.0)
    assert not b.leading.is_set()
    lease = await kube.get(rest_paths.LEASES, NS, "test-lease")
    assert lease["spec"]["holderIdentity"] == "a"

    ta.cancel()  # a dies without releasing
    with contextlib.suppress(asyncio.CancelledError):
        await ta
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    await asyncio.wait_for(b.leading.wait(), 5)
    assert loop.time() - t0 <= 2.0 + 0.5
    lease = await kube.get(rest_paths.LEASES, NS, "test-lease")
    assert lease["spec"]["holderIdentity"] == "b" and lease["spec"]["leaseTransitions"] == 1

    await b.release()
    tb.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await tb
    c = leasing.LeaderElector(kube, "c", cfg)
    tc = asyncio.create_task(c.run())
    await asyncio.wait_for(c.leading.wait(), 1.0)  # released: no need to wait for expiry
    tc.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await tc
