"""A re-pushed tag rolls out through an Artifact under steady load, end to end, with no failed request.

One fleet started by `wasmfleet up` (nats-server with JetStream, the embedded API server, the
operator with an artifact poll interval of 1 s, 3 hosts, the gateway; all real processes) and a
real docker-registry. The component is the componentize-js hello guest (~13 MB) built from its
source, so the new digest is one no host has compiled (tiered compilation: Winch code serves
first, Cranelift code replaces it in the background while the load goes on).

Checks:
1. an Artifact for `<registry>/apps/hello:1` and a 3-replica WorkloadDeployment bound to it
   (`kubectl apply`) serve the first build on 3 hosts;
2. 4 clients loop through the gateway while the tag is re-pushed with a build that answers
   differently: every request is answered 200 with one of the two bodies, from the re-push until
   every replica serves the new body, and for 15 s more (the hosts swap in optimized code then);
3. at the end all 3 Ready workloads belong to the new ReplicaSet and each answers the new body
   on its own host.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from wasmfleet.testing.oci_registry_server import Registry, push_wasm, running_registry

pytestmark = pytest.mark.timeout(420)

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
from tests.components.build import build_component  # noqa: E402

HOSTNAME = "rollout.localhost"
WF = [sys.executable, "-c", "from wasmfleet.cli.main import main; main()"]
BIN = Path(sys.executable).parent
V1 = "hello from javascript\n"
V2 = "hello from JAVASCRIPT\n"


class Fleet:
    def __init__(self, data: Path, proc: asyncio.subprocess.Process, output: list[str]) -> None:
        self.data = data
        self.proc = proc
        self.output = output
        self.gateway = "http://127.0.0.1:" + str(json.loads((data / "ports.json").read_text())["gateway"])

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "KUBECONFIG": str(self.data / "kubeconfig"), "PATH": f"{BIN}:{os.environ['PATH']}"}

    async def kubectl(self, *args: str, stdin: bytes | None = None) -> str:
        proc = await asyncio.create_subprocess_exec(
            str(BIN / "kubectl"), *args, env=self.env, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(stdin), 60)
        assert proc.returncode == 0, f"kubectl {' '.join(args)} failed: {err.decode()}"
        return out.decode()

    async def items(self, kind: str) -> list[dict[str, Any]]:
        return list(json.loads(await self.kubectl("get", kind, "-o", "json"))["items"])


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
def registry(tmp_path: Path) -> Any:
    with running_registry(tmp_path / "registry") as reg:
        yield reg


@pytest.fixture
async def fleet(tmp_path: Path) -> AsyncIterator[Fleet]:
    data = tmp_path / "fleet"
    env = {**os.environ, "WASMFLEET_OPERATOR_ARTIFACT_POLL_INTERVAL": "1"}
    proc = await asyncio.create_subprocess_exec(
        *WF, "up", "--data-dir", str(data), "--host-groups", "default", "--hosts-per-group", "3", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    output: list[str] = []

    async def read(until_up: bool) -> None:
        assert proc.stdout is not None
        while line := (await proc.stdout.readline()).decode():
            output.append(line)
            if until_up and "Ctrl-C stops everything" in line:
                return
        if until_up:
            raise AssertionError("wasmfleet up exited:\n" + "".join(output))

    await asyncio.wait_for(read(True), 120)
    drain = asyncio.create_task(read(False))
    try:
        yield Fleet(data, proc, output)
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(proc.wait(), 60)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        drain.cancel()
        children = json.loads((data / "children.json").read_text()) if (data / "children.json").exists() else {}
        for info in children.values():  # never leave a child behind, even when the test failed
            if info.get("pid"):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(info["pid"], signal.SIGKILL)


def manifests(image: str) -> bytes:
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
    return yaml.safe_dump_all([artifact, deployment]).encode()


def ready(workload: dict[str, Any]) -> bool:
    conditions = (workload.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions) and \
        not workload["metadata"].get("deletionTimestamp")


async def replica_bodies(fleet: Fleet, session: aiohttp.ClientSession) -> tuple[list[str], set[str]]:
    """(the body each Ready replica answers on its own host, the ReplicaSets they belong to)."""
    port_of = {h["hostId"]: h["httpPort"] for h in await fleet.items("hosts")}
    workloads = [w for w in await fleet.items("workloads") if ready(w)]
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
    await fleet.kubectl("apply", "-f", "-", stdin=manifests(f"{registry.host}/apps/hello:1"))
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as session:

        async def serving(body: str) -> bool:
            got, _ = await replica_bodies(fleet, session)
            return got == [body] * 3

        await until(lambda: serving(V1), 180, "3 replicas serving the first build")
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
