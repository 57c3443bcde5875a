"""An Artifact from an OCI registry publishes and serves on a `wasmfleet up` fleet (authorized NATS).

Real processes end to end: `wasmfleet up` (3 hosts; NATS with its per-role accounts and permissions),
a real docker-registry, and `wasmfleet push` of the hello-wat component. Checks:
- the Artifact for the pushed tag becomes Ready with status.artifactUrl
  `nats://wasmfleet-artifacts/<the layer's digest>` (the operator's identity published it to the
  Object Store in the CONTROL account);
- a 2-replica WorkloadDeployment bound to it gets Ready Workloads whose component image is that
  nats:// URL (the hosts' identities read it from the Object Store) and serves through the gateway.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from wasmfleet.testing.oci_registry_server import Registry, running_registry

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.components.build import build_component
from tests.e2e.test_fleet import WF, Fleet, fleet, until  # noqa: F401 - fleet is a fixture

pytestmark = pytest.mark.timeout(300)

HOSTNAME = "artifact.localhost"


@pytest.fixture
def registry(tmp_path: Path) -> Any:
    with running_registry(tmp_path / "registry") as reg:
        yield reg


def ready(resource: dict[str, Any]) -> bool:
    conditions = (resource.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


async def test_an_artifact_publishes_and_serves_under_up(
    fleet: Fleet, registry: Registry, tmp_path: Path  # noqa: F811
) -> None:
    wasm = build_component("hello-wat")
    digest = "sha256:" + hashlib.sha256(wasm.read_bytes()).hexdigest()
    image = f"{registry.host}/apps/hello:1"
    await fleet.run(*WF, "push", "--insecure", image, str(wasm))

    artifact = {"apiVersion": "runtime.wasmcloud.dev/v1alpha1", "kind": "Artifact",
                "metadata": {"name": "hello", "namespace": "default"}, "spec": {"image": image}}
    deployment = {
        "apiVersion": "runtime.wasmcloud.dev/v1alpha1", "kind": "WorkloadDeployment",
        "metadata": {"name": "from-artifact", "namespace": "default"},
        "spec": {"replicas": 2, "artifacts": [{"name": "app", "artifactFrom": {"name": "hello"}}],
                 "template": {"spec": {
                     "components": [{"name": "hello", "image": "artifact://app"}],
                     "hostInterfaces": [{"namespace": "wasi", "package": "http", "interfaces": ["incoming-handler"],
                                         "config": {"host": HOSTNAME}}]}}},
    }
    manifest = tmp_path / "artifact.yaml"
    manifest.write_text(yaml.safe_dump_all([artifact, deployment]))
    await fleet.run(*WF, "apply", "-f", str(manifest))

    async def published() -> dict[str, Any] | None:
        found: dict[str, Any] = await fleet.kubectl_json("get", "artifact", "hello")
        return found if ready(found) else None

    try:
        status = (await until(published, 90, "the Artifact to become Ready"))["status"]
    except AssertionError:
        found = await fleet.kubectl_json("get", "artifact", "hello")
        raise AssertionError(f"Artifact not Ready: {found.get('status')}") from None
    assert status["artifactUrl"] == f"nats://wasmfleet-artifacts/{digest}", status

    async def serving_workloads() -> list[dict[str, Any]]:
        items = (await fleet.kubectl_json("get", "workloads"))["items"]
        mine = [w for w in items if w["metadata"]["name"].startswith("from-artifact") and ready(w)]
        return mine if len(mine) == 2 else []

    workloads = await until(serving_workloads, 90, "2 Ready Workloads of the deployment")
    for workload in workloads:
        assert [c["image"] for c in workload["spec"]["components"]] == [status["artifactUrl"]]

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        async def answered() -> str:
            try:
                async with session.get(fleet.gateway + "/", headers={"Host": HOSTNAME}) as resp:
                    return await resp.text() if resp.status == 200 else ""
            except aiohttp.ClientError:
                return ""

        assert await until(answered, 60, "the deployment serving through the gateway") == "hello from wat\n"
    assert not any("object store timed out" in line for line in fleet.output)
