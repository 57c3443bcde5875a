"""The Artifact controller against a real docker-registry, a real nats-server with JetStream, the
embedded API server, the operator (artifact poll interval 1 s) and three real `wasmfleet host`
processes (no --allow-file-root: nats:// images need nothing on the host).

Checks:
- with an htpasswd registry and a kubernetes.io/dockerconfigjson pull secret: the Artifact's
  status.artifactUrl becomes `nats://wasmfleet-artifacts/sha256:<layer digest>` with digest, size,
  manifestDigest and lastPullTime, conditions Sync/Published/Ready True, and the object is in the
  Object Store; a WorkloadDeployment bound to it (artifact://) serves the component;
- re-pushing the tag with a component that answers differently rolls out: a new ReplicaSet, every
  replica serves the new body, and the old digest's object is deleted once no ReplicaSet uses it;
- polling an unchanged tag is one manifest HEAD per interval at the registry (counted at a real
  forwarding proxy) and no download;
- polling an unchanged tag rolls nothing (same ReplicaSet, same lastPullTime after several intervals);
- a pull secret of the wrong type (kubernetes.io/tls) is named in the Sync condition, nothing published;
- a pinned @sha256 digest the registry does not hold is refused in the Sync condition;
- a layer whose bytes do not match its digest (a real proxy flips a byte) is named in Sync, and
  nothing is stored;
- with an anonymous registry stopped: the Artifact keeps its artifactUrl (Sync False, Ready True), and
  a killed host's replica comes back on another host from the Object Store.
"""

from __future__ import annotations

import asyncio
import base64
import json
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import nats
import operator_harness as h
import pytest
from tampering_registry import tampering_proxy
from test_operator_placement import NS, cond, deployment, ready_workloads, workloads_of

from wasmfleet.artifacts import publishing
from wasmfleet.kube import client, rest_paths
from wasmfleet.operator import settings
from wasmfleet.testing import nats as nats_helper
from wasmfleet.testing.oci_registry_server import Registry, push_wasm, running_registry

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.components.build import build_component

pytestmark = pytest.mark.timeout(240)
USERS = {"fleet": "s3cret"}


def variant(wasm: bytes, old: bytes, new: bytes) -> bytes:
    """The same component answering `new` instead of `old` (same length: only data bytes change)."""
    assert len(old) == len(new) and wasm.count(old) >= 1
    return wasm.replace(old, new)


@pytest.fixture(scope="module")
def hello_v1() -> bytes:
    return build_component("hello-wat").read_bytes()


@pytest.fixture
async def fleet(tmp_path: Path) -> AsyncIterator[tuple[str, Path, h.HostProcesses, client.KubeClient]]:
    with nats_helper.running_nats_server(tmp_path / "nats") as url, h.apiserver(tmp_path / "api") as kubeconfig:
        # No --allow-file-root: they only read nats:// images.
        hosts = h.HostProcesses(url, tmp_path, own_cache=True)
        kube = await h.kube_client(kubeconfig)
        try:
            for i in range(1, 4):
                hosts.start(f"amber-heron-000{i}")
            yield url, kubeconfig, hosts, kube
        finally:
            await kube.close()
            hosts.stop_all()


@pytest.fixture
def registry(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Registry]:
    with running_registry(tmp_path / "registry", users=getattr(request, "param", None)) as reg:
        yield reg


def operator_cfg(kubeconfig: Path, url: str) -> settings.OperatorSettings:
    return h.operator_settings(kubeconfig, url, expiry_s=3.0,
                               artifacts=settings.ArtifactPublishing(poll_interval_s=1.0))


def artifact(name: str, image: str, secret: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"image": image}
    if secret:
        spec["imagePullSecret"] = {"name": secret}
    return {"apiVersion": "runtime.wasmcloud.dev/v1alpha1", "kind": "Artifact",
            "metadata": {"name": name, "namespace": NS}, "spec": spec}


def bound_deployment(name: str, art: str, replicas: int) -> dict[str, Any]:
    return deployment(name, replicas=replicas, artifacts=[{"name": "app", "artifactFrom": {"name": art}}],
                      workload={"components": [{"name": "hello", "image": "artifact://app"}]})


def secret(name: str, type_: str, data: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": NS}, "type": type_,
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == type_), {})


async def get_artifact(kube: client.KubeClient, name: str) -> dict[str, Any]:
    return await kube.get(rest_paths.ARTIFACTS, NS, name)


async def bodies(kube: client.KubeClient, name: str, n: int, dead: frozenset[str] = frozenset()) -> list[str] | None:
    """The bodies `n` Ready replicas answer with (None unless all of them answer 200)."""
    ready = await ready_workloads(kube, name, n)
    if not ready:
        return None
    hosts, _ = await kube.list(rest_paths.HOSTS, NS)
    port_of = {x["hostId"]: x["httpPort"] for x in hosts}
    out = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3)) as session:
        for w in ready:
            host_id = w["status"]["hostId"]
            if host_id in dead:
                return None
            try:
                async with session.get(f"http://127.0.0.1:{port_of[host_id]}/",
                                       headers={"Host": f"{name}.localhost"}) as r:
                    if r.status != 200:
                        return None
                    out.append(await r.text())
            except (aiohttp.ClientError, TimeoutError):
                return None
    return out


async def stored_digests(url: str) -> set[str]:
    nc = await nats.connect(url)
    try:
        return {o.digest for o in await publishing.list_published(nc)}
    finally:
        await nc.close()


async def current_rs(kube: client.KubeClient, name: str) -> str:
    wd = await kube.get(rest_paths.DEPLOYMENTS, NS, name)
    return str((wd.get("status") or {}).get("currentReplicaSet") or "")


@pytest.mark.parametrize("registry", [USERS], indirect=True, ids=["htpasswd"])
async def test_repushed_tag_rolls_out_and_bad_input_is_named(
    fleet: Any, registry: Registry, hello_v1: bytes
) -> None:
    url, kubeconfig, _hosts, kube = fleet
    auth = ("fleet", "s3cret")
    v1 = push_wasm(registry, "apps/hello", "1", hello_v1, auth=auth)
    dockercfg = json.dumps({"auths": {registry.host: {"username": "fleet", "password": "s3cret"}}})
    await kube.create(rest_paths.SECRETS, NS, secret("regcred", "kubernetes.io/dockerconfigjson",
                                                     {".dockerconfigjson": dockercfg}))
    await kube.create(rest_paths.SECRETS, NS, secret("tls-cert", "kubernetes.io/tls",
                                                     {"tls.crt": "x", "tls.key": "y"}))
    image = f"{registry.host}/apps/hello:1"
    async with h.running_operator(operator_cfg(kubeconfig, url)):
        await kube.create(rest_paths.ARTIFACTS, NS, artifact("hello", image, "regcred"))

        async def published() -> dict[str, Any] | None:
            obj = await get_artifact(kube, "hello")
            return obj if cond(obj, "Ready") == "True" and obj["status"].get("digest") == v1 else None

        art = await h.eventually(published, timeout_s=30, what="artifact published")
        st = art["status"]
        assert st["artifactUrl"] == f"nats://wasmfleet-artifacts/{v1}"
        assert st["size"] == len(hello_v1) and st["manifestDigest"].startswith("sha256:")
        assert st["lastPullTime"] and st["image"] == image
        assert [cond(art, t) for t in ("Sync", "Published", "Ready")] == ["True"] * 3
        assert v1 in await stored_digests(url)

        await kube.create(rest_paths.DEPLOYMENTS, NS, bound_deployment("hello", "hello", 3))
        got = await h.eventually(lambda: bodies(kube, "hello", 3), timeout_s=60, what="3 replicas serving v1")
        assert set(got) == {"hello from wat\n"}
        rs_v1 = await current_rs(kube, "hello")

        # Unchanged content: several polls later, nothing pulled, nothing rolled.
        await asyncio.sleep(3.5)
        again = await get_artifact(kube, "hello")
        assert again["status"]["lastPullTime"] == st["lastPullTime"]
        assert await current_rs(kube, "hello") == rs_v1

        # Re-push the tag with a component that answers differently: it rolls out.
        v2 = push_wasm(registry, "apps/hello", "1", variant(hello_v1, b"hello from wat", b"hello from WAT"), auth=auth)
        assert v2 != v1
        got = await h.eventually(
            lambda: _all(bodies(kube, "hello", 3), {"hello from WAT\n"}), timeout_s=60, what="3 replicas serving v2")
        art = await get_artifact(kube, "hello")
        assert art["status"]["digest"] == v2 and art["status"]["artifactUrl"].endswith(v2)
        assert await current_rs(kube, "hello") != rs_v1

        # The old object goes once no ReplicaSet uses it; the new one stays.
        async def v1_collected() -> bool:
            digests = await stored_digests(url)
            return v1 not in digests and v2 in digests

        await h.eventually(v1_collected, timeout_s=30, what="old digest garbage-collected")

        # A pull secret of the wrong type is named; nothing is published.
        await kube.create(rest_paths.ARTIFACTS, NS, artifact("wrong-secret", image, "tls-cert"))

        async def refused(name: str) -> dict[str, Any] | None:
            obj = await get_artifact(kube, name)
            return obj if cond(obj, "Sync") == "False" else None

        bad = await h.eventually(lambda: refused("wrong-secret"), timeout_s=20, what="wrong secret named")
        sync = condition(bad, "Sync")
        assert sync["reason"] == "PullSecretInvalid"
        assert f"{NS}/tls-cert" in sync["message"] and "kubernetes.io/tls" in sync["message"]
        assert cond(bad, "Ready") == "False" and not bad["status"].get("artifactUrl")

        # A pinned digest the registry does not hold is refused.
        wrong = "sha256:" + "0" * 64
        pinned = artifact("pinned", f"{registry.host}/apps/hello@{wrong}", "regcred")
        await kube.create(rest_paths.ARTIFACTS, NS, pinned)
        bad = await h.eventually(lambda: refused("pinned"), timeout_s=20, what="wrong digest refused")
        assert condition(bad, "Sync")["reason"] == "NotFound", condition(bad, "Sync")
        assert wrong in condition(bad, "Sync")["message"] or "not found" in condition(bad, "Sync")["message"]
        assert cond(bad, "Ready") == "False" and not bad["status"].get("artifactUrl")


async def _all(pending: Any, wanted: set[str]) -> list[str] | None:
    got = await pending
    return got if got is not None and set(got) == wanted else None


async def test_registry_down_replicas_come_back_from_the_object_store(
    fleet: Any, registry: Registry, hello_v1: bytes
) -> None:
    url, kubeconfig, hosts, kube = fleet
    digest = push_wasm(registry, "apps/hello", "1", hello_v1)
    async with h.running_operator(operator_cfg(kubeconfig, url)):
        await kube.create(rest_paths.ARTIFACTS, NS, artifact("hello", f"{registry.host}/apps/hello:1"))
        await kube.create(rest_paths.DEPLOYMENTS, NS, bound_deployment("hello", "hello", 2))
        await h.eventually(lambda: bodies(kube, "hello", 2), timeout_s=60, what="2 replicas serving")
        art_url = (await get_artifact(kube, "hello"))["status"]["artifactUrl"]
        assert art_url.endswith(digest)

        registry.process.terminate()
        registry.process.wait(10)

        async def outage_named() -> dict[str, Any] | None:
            obj = await get_artifact(kube, "hello")
            return obj if cond(obj, "Sync") == "False" else None

        art = await h.eventually(outage_named, timeout_s=20, what="registry outage in the condition")
        assert art["status"]["artifactUrl"] == art_url and cond(art, "Ready") == "True"
        assert condition(art, "Sync")["reason"] == "RegistryUnavailable"

        victim_wl = (await workloads_of(kube, "hello"))[0]
        victim_id = victim_wl["status"]["hostId"]
        host_objs, _ = await kube.list(rest_paths.HOSTS, NS)
        victim = next(x["metadata"]["name"] for x in host_objs if x["hostId"] == victim_id)
        killed = time.monotonic()
        hosts.kill(victim)
        got = await h.eventually(lambda: bodies(kube, "hello", 2, frozenset({victim_id})), timeout_s=30,
                                 what="replicas back on live hosts")
        assert set(got) == {"hello from wat\n"}
        print(f"failover with the registry down: {time.monotonic() - killed:.2f}s")
        ready = await ready_workloads(kube, "hello", 2)
        assert ready and all(w["spec"]["components"][0]["image"] == art_url for w in ready)


async def test_layer_digest_mismatch_is_named_and_nothing_is_published(tmp_path: Path, hello_v1: bytes) -> None:
    """A registry (behind a real proxy flipping a byte of every blob) serving a layer whose bytes do
    not match their digest: Sync False naming the mismatch, no artifactUrl, no object stored."""
    with running_registry(tmp_path / "registry") as reg, \
            nats_helper.running_nats_server(tmp_path / "nats") as url, h.apiserver(tmp_path / "api") as kubeconfig:
        push_wasm(reg, "apps/hello", "1", hello_v1)
        kube = await h.kube_client(kubeconfig)
        try:
            async with tampering_proxy(reg.url) as proxy, h.running_operator(operator_cfg(kubeconfig, url)):
                await kube.create(rest_paths.ARTIFACTS, NS, artifact("tampered", f"{proxy}/apps/hello:1"))

                async def refused() -> dict[str, Any] | None:
                    obj = await get_artifact(kube, "tampered")
                    return obj if cond(obj, "Sync") == "False" else None

                bad = await h.eventually(refused, timeout_s=20, what="digest mismatch named")
                sync = condition(bad, "Sync")
                assert sync["reason"] == "DigestMismatch" and "digest mismatch" in sync["message"], sync
                assert cond(bad, "Ready") == "False" and not bad["status"].get("artifactUrl")
                assert await stored_digests(url) == set()
        finally:
            await kube.close()


async def test_polling_is_one_head_per_interval(tmp_path: Path, hello_v1: bytes) -> None:
    """Counted at a real forwarding proxy in front of the registry: once published, an unchanged tag
    costs one manifest HEAD per poll interval (1 s) and no download, whatever else reconciles."""
    with running_registry(tmp_path / "registry") as reg, \
            nats_helper.running_nats_server(tmp_path / "nats") as url, h.apiserver(tmp_path / "api") as kubeconfig:
        push_wasm(reg, "apps/hello", "1", hello_v1)
        kube = await h.kube_client(kubeconfig)
        seen: list[str] = []
        try:
            async with tampering_proxy(reg.url, tamper=False, seen=seen) as proxy, \
                    h.running_operator(operator_cfg(kubeconfig, url)):
                await kube.create(rest_paths.ARTIFACTS, NS, artifact("hello", f"{proxy}/apps/hello:1"))

                async def published() -> bool:
                    return cond(await get_artifact(kube, "hello"), "Ready") == "True"

                await h.eventually(published, timeout_s=20, what="published")
                await asyncio.sleep(1.5)  # the status write after the first check settles
                seen.clear()
                await asyncio.sleep(6.0)
                heads = [r for r in seen if r.startswith("HEAD ") and "/manifests/" in r]
                assert 3 <= len(heads) <= 7, seen
                assert not [r for r in seen if r.startswith("GET ") and "/blobs/" in r], seen
        finally:
            await kube.close()
