"""A re-pushed tag rolls out through an Artifact under steady load, end to end, with no failed request.

Real processes: nats-server with JetStream, the embedded API server, `wasmfleet operator` (artifact
poll interval 1 s), 3 `wasmfleet host`s (each its own compile cache) and `wasmfleet gateway`, and a
real docker-registry. (Artifacts under `wasmfleet up`'s authorized NATS: tests/e2e/test_fleet_artifacts.py.)
The component is the componentize-js hello guest (~13 MB) built from its
source, so the new digest is one no host has compiled (tiered compilation: Winch code serves first,
Cranelift code replaces it in the background while the load goes on).

Checks:
1. an Artifact for `<registry>/apps/hello:1` and a 3-replica WorkloadDeployment bound to it serve
   the first build on 3 hosts;
2. 4 clients loop through the gateway while the tag is re-pushed with a build that answers
   differently: every request is answered 200 with one of the two bodies, from the re-push until
   every replica serves the new body, and for 15 s more (the hosts swap in optimized code then);
3. at the end the 3 Ready workloads belong to a new ReplicaSet and each answers the new body on
   its own host.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from wasmfleet.kube import client, rest_paths
from wasmfleet.testing import nats as nats_helper
from wasmfleet.testing.oci_registry_server import Registry, push_wasm, running_registry

pytestmark = pytest.mark.timeout(420)

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "integration"))
import operator_harness as h  # noqa: E402
from tests.components.build import build_component  # noqa: E402

NS = "default"
HOSTNAME = "rollout.localhost"
WASMFLEET = str(Path(sys.executable).parent / "wasmfleet")
V1 = "hello from javascript\n"
V2 = "hello from JAVASCRIPT\n"


class Fleet:
    def __init__(self, kube: client.KubeClient, gateway: str) -> None:
        self.kube = kube
        self.gateway = gateway

    async def items(self, path: str) -> list[dict[str, Any]]:
        found, _ = await self.kube.list(path, NS)
        return list(found)


async def until(check: Callable[[], Awaitable[Any]], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(0.2)


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    with running_registry(tmp_path / "registry") as reg:
        yield reg


@pytest.fixture
async def fleet(tmp_path: Path) -> AsyncIterator[Fleet]:
    with nats_helper.running_nats_server(tmp_path / "nats") as url, h.apiserver(tmp_path / "api") as kubeconfig:
        gateway_port = nats_helper.free_port()
        argvs = [
            *([WASMFLEET, "host", "--nats", url, "--name", f"rollout-host-000{i}", "--heartbeat-interval", "1",
               "--data-dir", str(tmp_path / f"host{i}"), "--cache-dir", str(tmp_path / f"cache{i}")]
              for i in range(1, 4)),
            [WASMFLEET, "operator", "--kubeconfig", str(kubeconfig), "--nats", url, "--listen", "127.0.0.1:0",
             "--artifact-poll-interval", "1"],
            [WASMFLEET, "gateway", "--kubeconfig", str(kubeconfig), "--port", str(gateway_port)],
        ]
        procs = []
        for n, argv in enumerate(argvs):
            with open(tmp_path / f"process{n}.log", "ab") as log:
                procs.append(subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                              env={**os.environ, "XDG_CACHE_HOME": str(tmp_path / f"xdg{n}")}))
        kube = await h.kube_client(kubeconfig)
        try:
            yield Fleet(kube, f"http://127.0.0.1:{gateway_port}")
        finally:
            await kube.close()
            for proc in procs:
                proc.terminate()
            for proc in procs:
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def manifests(image: str) -> tuple[dict[str, Any], dict[str, Any]]:
    artifact = {"apiVersion": "runtime.wasmcloud.dev/v1alpha1", "kind": "Artifact",
                "metadata": {"name": "hello", "namespace": "default"}, "spec": {"image": image}}
    deployment = {
        "apiVersion": "runtime.wasmcloud.dev/v1alpha1", "kind": "WorkloadDeployment",
        "metadata": {"name": "rollout", "namespace": "default"},
        "spec": {"replicas": 3, "artifacts": [{"name": "app", "artifactFrom": {"name": "hello"}}],
                 "template": {"spec": {
                     "components": [{"name": "hello", "image": "artifact://app"}],
                     "hostInterfaces": [{"namespace": "wasi", "package": "http", "interfaces": ["incoming-handler"],
                                         "config": {"host": HOSTNAME}}]}}},
    }
    return artifact, deployment


def ready(workload: dict[str, Any]) -> bool:
    conditions = (workload.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions) and \
        not workload["metadata"].get("deletionTimestamp")


async def replica_bodies(fleet: Fleet, session: aiohttp.ClientSession) -> tuple[list[str], set[str]]:
    """(the body each Ready replica answers on its own host, the ReplicaSets they belong to)."""
    port_of = {x["hostId"]: x["httpPort"] for x in await fleet.items(rest_paths.HOSTS)}
    workloads = [w for w in await fleet.items(rest_paths.WORKLOADS) if ready(w)]
    out: list[str] = []
    for w in workloads:
        try:
            async with session.get(f"http://127.0.0.1:{port_of[w['status']['hostId']]}/",
                                   headers={"Host": HOSTNAME}) as r:
                out.append(await r.text() if r.status == 200 else f"HTTP {r.status}")
        except (aiohttp.ClientError, TimeoutError, KeyError) as exc:
            out.append(f"unreachable: {exc!r}")
    owners = {ref["name"] for w in workloads for ref in w["metadata"].get("ownerReferences", [])}
    return out, owners


async def test_repushed_tag_rolls_out_under_load_without_a_failed_request(
    fleet: Fleet, registry: Registry
) -> None:
    wasm = build_component("hello-js").read_bytes()
    assert wasm.count(V1.strip().encode()) >= 1
    v2 = wasm.replace(V1.strip().encode(), V2.strip().encode())
    push_wasm(registry, "apps/hello", "1", wasm)
    artifact, deployment = manifests(f"{registry.host}/apps/hello:1")
    await fleet.kube.create(rest_paths.ARTIFACTS, NS, artifact)
    await fleet.kube.create(rest_paths.DEPLOYMENTS, NS, deployment)
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as session:

        async def serving(body: str) -> bool:
            got, _ = await replica_bodies(fleet, session)
            return got == [body] * 3

        try:
            await until(lambda: serving(V1), 180, "3 replicas serving the first build")
        except AssertionError:
            print(await fleet.items(rest_paths.ARTIFACTS), await fleet.items(rest_paths.WORKLOADS))
            raise
        old_sets = (await replica_bodies(fleet, session))[1]

        answers: Counter[tuple[int, str]] = Counter()
        stop = asyncio.Event()

        async def client() -> None:
            while not stop.is_set():
                try:
                    async with session.get(fleet.gateway + "/", headers={"Host": HOSTNAME}) as r:
                        answers[(r.status, await r.text())] += 1
                except (aiohttp.ClientError, TimeoutError) as exc:
                    answers[(0, repr(exc))] += 1

        clients = [asyncio.create_task(client()) for _ in range(4)]
        try:
            await asyncio.sleep(1)
            pushed = time.monotonic()
            push_wasm(registry, "apps/hello", "1", v2)
            await until(lambda: serving(V2), 180, "3 replicas serving the re-pushed build")
            rolled_s = time.monotonic() - pushed
            await asyncio.sleep(15)  # the hosts swap Winch code for Cranelift code meanwhile
        finally:
            stop.set()
            await asyncio.gather(*clients)
        failed = {k: n for k, n in answers.items() if k not in {(200, V1), (200, V2)}}
        assert not failed, f"requests failed during the rollout: {failed} (of {sum(answers.values())})"
        assert answers[(200, V2)] > 20 and answers[(200, V1)] > 0
        bodies, sets = await replica_bodies(fleet, session)
        assert bodies == [V2] * 3 and sets and not sets & old_sets, (bodies, sets, old_sets)
        print(f"\nre-push -> 3 replicas serving: {rolled_s:.2f} s; answers {dict(answers)}")
