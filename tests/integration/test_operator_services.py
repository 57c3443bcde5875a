"""Workloads with a service through the whole control plane: the real embedded API server, kubectl,
the operator in process, a real host agent on a real nats-server, and the C command component
tests/components/service-c as the service (next to the WAT HTTP component hello-wat).

Checks:
- a Workload whose service runs becomes Ready, with status.service (state running, restartCount 0,
  maxRestarts: the host's default 10) as `kubectl get -o json` shows it, and `wasmfleet logs`
  shows the service's output;
- a Workload whose service exits 1 (maxRestarts 2) ends not Ready with reason ServiceFailed and a
  message naming the last error, status.service showing state failed, restartCount 2, lastExitCode
  1, lastError "exit code 1"; it is never started again (the run count on its hostPath volume
  stays at 3, Placement stays True) while its HTTP component keeps serving.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import operator_harness as h
import pytest
from click.testing import CliRunner

from wasmfleet.artifacts.fetching import ArtifactSettings
from wasmfleet.cli import main
from wasmfleet.host.agent import Agent
from wasmfleet.host.policy import HostPolicy
from wasmfleet.host.settings import BusSettings, HostSettings, Identity, LifecycleSettings, ServingSettings
from wasmfleet.testing.nats import NatsServer, nats_server

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.components.build import build_component, cache_dir

pytestmark = pytest.mark.timeout(120)

MANIFEST = """
apiVersion: runtime.wasmcloud.dev/v1alpha1
kind: Workload
metadata:
  name: svc-ok
spec:
  components:
    - name: web
      image: file://{hello}
  hostInterfaces:
    - namespace: wasi
      package: http
      interfaces: [incoming-handler]
      config:
        host: svc-ok.test
  service:
    image: file://{service}
    localResources:
      environment:
        config:
          SERVICE_MODE: serve
---
apiVersion: runtime.wasmcloud.dev/v1alpha1
kind: Workload
metadata:
  name: svc-crash
spec:
  components:
    - name: web
      image: file://{hello}
  hostInterfaces:
    - namespace: wasi
      package: http
      interfaces: [incoming-handler]
      config:
        host: svc-crash.test
  volumes:
    - name: marks
      hostPath:
        path: {marks}
  service:
    image: file://{service}
    maxRestarts: 2
    localResources:
      environment:
        config:
          SERVICE_MODE: exit
          SERVICE_EXIT: "1"
          SERVICE_MARK: /marks
      volumeMounts:
        - name: marks
          mountPath: /marks
"""


@pytest.fixture
def bus(tmp_path: Path) -> Iterator[NatsServer]:
    with nats_server(tmp_path / "nats") as server:
        yield server


def kubectl_json(kubeconfig: Path, *args: str) -> Any:
    done = subprocess.run(["kubectl", "--kubeconfig", str(kubeconfig), *args, "-o", "json"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    return next((c for c in (obj.get("status") or {}).get("conditions", []) if c["type"] == kind), {})


async def http_status(port: int, host: str) -> int:
    async with aiohttp.ClientSession() as session, session.get(
        f"http://127.0.0.1:{port}/", headers={"Host": host}
    ) as response:
        return response.status


async def test_service_workloads_report_ready_and_crash_loops(tmp_path: Path, bus: NatsServer) -> None:
    service, hello = build_component("service-c"), build_component("hello-wat")
    marks = tmp_path / "marks"
    marks.mkdir()
    manifest = tmp_path / "services.yaml"
    manifest.write_text(MANIFEST.format(hello=hello, service=service, marks=marks))
    with h.apiserver(tmp_path / "api") as kubeconfig:
        agent = Agent(HostSettings(
            identity=Identity(labels={"hostgroup": "default"}),
            bus=BusSettings(nats_url=bus.url, heartbeat_interval_s=0.3, reconnect_wait_s=0.1),
            serving=ServingSettings(http_host="127.0.0.1", http_port=0, workers=1),
            lifecycle=LifecycleSettings(drain_timeout_s=2, data_dir=tmp_path / "host"),
            artifacts=ArtifactSettings(cache_dir=tmp_path / "artifacts"),
            runtime_cache_dir=tmp_path / "compiled",
            policy=HostPolicy.allowing(cache_dir(), tmp_path),
        ))
        await agent.start()
        try:
            async with h.running_operator(h.operator_settings(kubeconfig, bus.url)):
                applied = await asyncio.to_thread(
                    subprocess.run, ["kubectl", "--kubeconfig", str(kubeconfig), "apply", "-f", str(manifest)],
                    capture_output=True, text=True, timeout=60)
                assert applied.returncode == 0, applied.stderr

                async def ok_ready() -> Any:
                    obj = await asyncio.to_thread(kubectl_json, kubeconfig, "get", "workload", "svc-ok")
                    return obj if condition(obj, "Ready").get("status") == "True" else None

                ok = await h.eventually(ok_ready, 60, "svc-ok Ready")
                assert ok["status"]["service"]["state"] == "running"
                assert ok["status"]["service"]["restartCount"] == 0
                assert ok["status"]["service"]["maxRestarts"] == 10
                assert "lastError" not in ok["status"]["service"]
                assert await http_status(agent.http_port, "svc-ok.test") == 200

                async def logged() -> str | None:
                    result = await asyncio.to_thread(CliRunner().invoke, main.cli, [
                        "logs", "svc-ok", "--kubeconfig", str(kubeconfig), "--nats", bus.url])
                    return result.stdout if "service up" in result.stdout else None

                out = await h.eventually(logged, 20, "the service's output in wasmfleet logs")
                assert "service warming up" in out

                async def crash_failed() -> Any:
                    obj = await asyncio.to_thread(kubectl_json, kubeconfig, "get", "workload", "svc-crash")
                    service_status = (obj.get("status") or {}).get("service") or {}
                    ready = condition(obj, "Ready")
                    return obj if service_status.get("state") == "failed" and ready.get("reason") == \
                        "ServiceFailed" else None

                crash = await h.eventually(crash_failed, 60, "svc-crash failed at maxRestarts")
                service_status = crash["status"]["service"]
                assert (service_status["restartCount"], service_status["maxRestarts"]) == (2, 2)
                assert (service_status["lastExitCode"], service_status["lastError"]) == (1, "exit code 1")
                assert service_status["lastExitTime"].endswith("Z")
                ready = condition(crash, "Ready")
                assert ready["status"] == "False"
                assert ready["message"] == ("service failed: exit code 1; not restarted: maxRestarts (2) reached "
                                            "after 2 restarts")
                assert condition(crash, "Placement")["status"] == "True"
                placement_changed = condition(crash, "Placement")["lastTransitionTime"]

                await asyncio.sleep(4)  # two service confirmations, and more than a start backoff
                assert (marks / "runs").read_text().splitlines() == ["run"] * 3  # nobody started it again
                again = await asyncio.to_thread(kubectl_json, kubeconfig, "get", "workload", "svc-crash")
                assert again["status"]["service"]["restartCount"] == 2
                assert condition(again, "Ready")["reason"] == "ServiceFailed"
                assert condition(again, "Placement")["lastTransitionTime"] == placement_changed
                assert await http_status(agent.http_port, "svc-crash.test") == 200
        finally:
            await agent.shutdown()
