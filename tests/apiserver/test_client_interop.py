"""kubernetes_asyncio against the embedded server: list then watch from the list's resourceVersion,
resume after a dropped watch, 410 on a compacted resourceVersion followed by a relist, and Lease leader
election between two candidates with takeover after the holder stops renewing."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio import client, config, watch
from kubernetes_asyncio.client.exceptions import ApiException
from kubernetes_asyncio.leaderelection import electionconfig, leaderelection
from kubernetes_asyncio.leaderelection.resourcelock.leaselock import LeaseLock

from wasmfleet.testing.apiserver import ApiServerProcess

G, V, P = "runtime.wasmcloud.dev", "v1alpha1", "artifacts"


@pytest.fixture(scope="module")
def small_window(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServerProcess]:
    proc = ApiServerProcess(tmp_path_factory.mktemp("apiserver-window"), "--watch-window", "100")
    proc.start()
    yield proc
    proc.stop()


@contextlib.asynccontextmanager
async def api(kubeconfig: Path) -> AsyncIterator[client.ApiClient]:
    api_client = await config.new_client_from_config(config_file=str(kubeconfig))
    try:
        yield api_client
    finally:
        await api_client.close()


def artifact(name: str) -> dict[str, Any]:
    return {"apiVersion": f"{G}/{V}", "kind": "Artifact", "metadata": {"name": name},
            "spec": {"image": f"ghcr.io/example/{name}:1"}}


async def test_list_then_watch_and_resume(server: ApiServerProcess) -> None:
    async with api(server.kubeconfig) as c:
        objs = client.CustomObjectsApi(c)
        await objs.create_namespaced_custom_object(G, V, "default", P, artifact("one"))
        listed = await objs.list_namespaced_custom_object(G, V, "default", P)
        rv = listed["metadata"]["resourceVersion"]
        assert [i["metadata"]["name"] for i in listed["items"]] == ["one"]
        await objs.create_namespaced_custom_object(G, V, "default", P, artifact("two"))
        w = watch.Watch()
        seen = []
        async with w.stream(objs.list_namespaced_custom_object, G, V, "default", P, resource_version=rv,
                            timeout_seconds=5) as stream:
            async for ev in stream:
                seen.append((ev["type"], ev["object"]["metadata"]["name"]))
                break
        resume_rv = w.resource_version
        assert seen == [("ADDED", "two")]
        # Changes while no watch is open are delivered on resume from the last seen resourceVersion.
        await objs.patch_namespaced_custom_object(G, V, "default", P, "one", {"spec": {"image": "x/y:2"}},
                                                   _content_type="application/merge-patch+json")
        await objs.delete_namespaced_custom_object(G, V, "default", P, "two")
        seen = []
        async with watch.Watch().stream(objs.list_namespaced_custom_object, G, V, "default", P,
                                        resource_version=resume_rv, timeout_seconds=5) as stream:
            async for ev in stream:
                seen.append((ev["type"], ev["object"]["metadata"]["name"]))
                if len(seen) == 2:
                    break
        assert seen == [("MODIFIED", "one"), ("DELETED", "two")]


async def test_compacted_resource_version_gives_410_then_relist(small_window: ApiServerProcess) -> None:
    async with api(small_window.kubeconfig) as c:
        core = client.CoreV1Api(c)
        old_rv = (await core.list_namespaced_config_map("default")).metadata.resource_version
        body = {"metadata": {"name": "churn"}, "data": {"n": "0"}}
        await core.create_namespaced_config_map("default", body)
        for i in range(150):  # more changes than the 100-event window
            await core.patch_namespaced_config_map("churn", "default", {"data": {"n": str(i)}})
        with pytest.raises(ApiException) as caught:
            async with watch.Watch().stream(core.list_namespaced_config_map, "default", resource_version=old_rv,
                                            timeout_seconds=5) as stream:
                async for _ in stream:
                    pass
        assert caught.value.status == 410
        relisted = await core.list_namespaced_config_map("default")
        assert relisted.items[0].data == {"n": "149"}
        async with watch.Watch().stream(core.list_namespaced_config_map, "default",
                                        resource_version=relisted.metadata.resource_version,
                                        timeout_seconds=5) as stream:
            await core.patch_namespaced_config_map("churn", "default", {"data": {"n": "done"}})
            async for ev in stream:
                assert ev["type"] == "MODIFIED" and ev["object"].data == {"n": "done"}
                break


async def test_lease_leader_election_with_takeover(server: ApiServerProcess) -> None:
    leaders: list[str] = []
    stopped: list[str] = []

    async def candidate(identity: str) -> None:
        async with api(server.kubeconfig) as c:
            lock = LeaseLock("wasmfleet-test-leader", "default", identity, c)

            async def on_started() -> None:
                leaders.append(identity)
                await asyncio.Event().wait()

            async def on_stopped() -> None:
                stopped.append(identity)

            cfg = electionconfig.Config(lock, lease_duration=2, renew_deadline=1.5, retry_period=1,
                                        onstarted_leading=on_started, onstopped_leading=on_stopped)
            await leaderelection.LeaderElection(cfg).run()

    first = asyncio.create_task(candidate("alpha"))
    for _ in range(50):
        if leaders:
            break
        await asyncio.sleep(0.1)
    assert leaders == ["alpha"]
    second = asyncio.create_task(candidate("beta"))
    await asyncio.sleep(2.5)
    assert leaders == ["alpha"], "beta must not take a lease alpha keeps renewing"
    first.cancel()  # alpha dies: no more renewals
    with contextlib.suppress(asyncio.CancelledError):
        await first
    for _ in range(100):
        if len(leaders) == 2:
            break
        await asyncio.sleep(0.1)
    assert leaders == ["alpha", "beta"]
    async with api(server.kubeconfig) as c:
        lease = await client.CoordinationV1Api(c).read_namespaced_lease("wasmfleet-test-leader", "default")
        assert lease.spec.holder_identity == "beta"
    second.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await second
