"""Guest logs end to end: a real component that prints, a real host agent, real NATS, the real API
server and operator, and `wasmfleet logs`.

Checks:
- over NATS (runtime.host.<id>.workload.logs), with two wasm worker processes writing one file:
  a workload's stdout and stderr lines come back in order with their stream, component and time,
  and two workloads' lines never mix; tailLines keeps the newest lines, sinceTime the recent ones;
  a stopped workload's log is gone (404) and its file removed;
- unknown workload -> 404 ErrorReply, malformed or id-less request -> 400 (with the NATS error headers);
- the log file rotates to .1 past its size cap and the tail reads across both files;
- `wasmfleet logs` for a WorkloadDeployment placed by the operator: every replica's lines, prefixed
  with its Workload's name; one Workload by name gives only its own lines; --tail; the NATS URL read
  from DATA_DIR/ports.json; one-line errors for an unknown name, an unplaced workload and a host that
  does not answer.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import nats
import operator_harness as h
import pytest
from click.testing import CliRunner

from wasmfleet.artifacts.fetching import ArtifactSettings
from wasmfleet.bus import messages, subjects
from wasmfleet.cli import main
from wasmfleet.host.agent import Agent
from wasmfleet.host.plugin_api import guestlogs
from wasmfleet.host.policy import HostPolicy
from wasmfleet.host.settings import BusSettings, HostSettings, Identity, LifecycleSettings, ServingSettings
from wasmfleet.kube import rest_paths
from wasmfleet.testing.nats import NatsServer, nats_server

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.components.build import build_component, cache_dir

pytestmark = pytest.mark.timeout(90)


@pytest.fixture(scope="module")
def printer() -> Path:
    return build_component("print-wat")


@pytest.fixture
def bus(tmp_path: Path) -> Iterator[NatsServer]:
    with nats_server(tmp_path / "nats") as server:
        yield server


def settings(tmp_path: Path, url: str, workers: int) -> HostSettings:
    return HostSettings(
        identity=Identity(labels={"hostgroup": "default"}),
        bus=BusSettings(nats_url=url, heartbeat_interval_s=0.3, reconnect_wait_s=0.1),
        serving=ServingSettings(http_host="127.0.0.1", http_port=0, workers=workers),
        lifecycle=LifecycleSettings(drain_timeout_s=2, data_dir=tmp_path / "host"),
        artifacts=ArtifactSettings(cache_dir=tmp_path / "artifacts"),
        runtime_cache_dir=tmp_path / "compiled",
        policy=HostPolicy.allowing(cache_dir()),  # the built test guests
    )


@pytest.fixture
async def nc(bus: NatsServer) -> AsyncIterator[Any]:
    client = await nats.connect(bus.url)
    try:
        yield client
    finally:
        await client.close()


def start_request(workload_id: str, image: Path, host: str) -> bytes:
    return messages.encode(messages.WorkloadStartRequest(
        workload_id=workload_id,
        workload=messages.Workload(namespace="default", name=workload_id, wit_world=messages.WitWorld(
            components=[messages.Component(name="printer", image=f"file://{image}")],
            host_interfaces=[messages.WitInterface(namespace="wasi", package="http", interfaces=["incoming-handler"],
                                                   config={"host": host})],
        )),
    ))


async def get(port: int, host: str, path: str) -> None:
    async with aiohttp.ClientSession() as session, session.get(
        f"http://127.0.0.1:{port}{path}", headers={"Host": host}
    ) as response:
        assert response.status == 200, await response.text()


async def logs(nc: Any, agent: Agent, payload: dict[str, Any] | bytes) -> Any:
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return await nc.request(subjects.workload_logs(agent.host_id), data, timeout=10)


async def test_logs_over_nats_per_workload_with_tail_since_and_stop(
    tmp_path: Path, bus: NatsServer, nc: Any, printer: Path
) -> None:
    agent = Agent(settings(tmp_path, bus.url, workers=2))
    await agent.start()
    try:
        for wid, host in (("w-a", "a.test"), ("w-b", "b.test")):
            reply = await nc.request(subjects.workload_start(agent.host_id), start_request(wid, printer, host),
                                     timeout=30)
            assert json.loads(reply.data)["workloadStatus"]["workloadState"] == "WORKLOAD_STATE_RUNNING"
        # Sequential requests: the kernel spreads the connections over both worker processes.
        for path in ("/a1", "/a2", "/a3"):
            await get(agent.http_port, "a.test", path)
        await get(agent.http_port, "b.test", "/b1")
        cut = datetime.now(UTC)
        await get(agent.http_port, "a.test", "/warn-a")

        body = json.loads((await logs(nc, agent, {"workloadId": "w-a"})).data)
        assert body["workloadId"] == "w-a"
        assert [(ln["stream"], ln["text"]) for ln in body["lines"]] == [
            ("stdout", "request /a1"), ("stdout", "request /a2"), ("stdout", "request /a3"),
            ("stdout", "request /warn-a"), ("stderr", "warning /warn-a"),
        ]
        assert {ln["component"] for ln in body["lines"]} == {"printer"}
        assert all(ln["time"].endswith("Z") for ln in body["lines"])
        other = json.loads((await logs(nc, agent, {"workloadId": "w-b"})).data)
        assert [ln["text"] for ln in other["lines"]] == ["request /b1"]

        tail = json.loads((await logs(nc, agent, {"workload_id": "w-a", "tailLines": 2})).data)
        assert [ln["text"] for ln in tail["lines"]] == ["request /warn-a", "warning /warn-a"]
        since = json.loads((await logs(nc, agent, {"workloadId": "w-a",
                                                    "sinceTime": cut.isoformat().replace("+00:00", "Z")})).data)
        assert [ln["text"] for ln in since["lines"]] == ["request /warn-a", "warning /warn-a"]

        log_file = tmp_path / "host" / agent.host_id / "logs" / "w-a.log"
        assert log_file.exists()
        await nc.request(subjects.workload_stop(agent.host_id), b'{"workloadId": "w-a"}', timeout=10)
        gone = await logs(nc, agent, {"workloadId": "w-a"})
        assert gone.headers["Nats-Service-Error-Code"] == "404"
        assert not log_file.exists()
    finally:
        await agent.shutdown()


async def test_logs_request_errors(tmp_path: Path, bus: NatsServer, nc: Any) -> None:
    agent = Agent(settings(tmp_path, bus.url, workers=1))
    await agent.start()
    try:
        unknown = await logs(nc, agent, {"workloadId": "nope"})
        assert unknown.headers["Nats-Service-Error-Code"] == "404"
        assert json.loads(unknown.data)["error"]["message"] == "workload nope is not on this host"
        for bad in (b"{not json", b"{}", b'{"workloadId": "x", "tailLines": "many"}'):
            reply = await logs(nc, agent, bad)
            assert reply.headers["Nats-Service-Error-Code"] == "400", bad
            assert json.loads(reply.data)["error"]["message"].startswith("invalid request")
    finally:
        await agent.shutdown()


def test_rotation_keeps_the_newest_lines_across_two_files(tmp_path: Path) -> None:
    sink = guestlogs.GuestLog(guestlogs.log_path(tmp_path, "w"), "c", max_bytes=2000)
    for i in range(100):
        sink.write("stdout", f"line {i}")
    sink.close()
    current, previous = tmp_path / "w.log", tmp_path / "w.log.1"
    assert previous.exists() and current.exists()
    assert current.stat().st_size <= 2100 and previous.stat().st_size <= 2100
    lines, truncated = guestlogs.tail(tmp_path, "w", 0)
    texts = [ln.text for ln in lines]
    assert texts[-1] == "line 99" and not truncated
    assert texts == [f"line {i}" for i in range(100 - len(texts), 100)] and len(texts) > 20
    newest, _ = guestlogs.tail(tmp_path, "w", 30)
    assert [ln.text for ln in newest] == [f"line {i}" for i in range(70, 100)]
    capped, truncated = guestlogs.tail(tmp_path, "w", 0, max_bytes=500)
    assert truncated and capped[-1].text == "line 99" and len(capped) < 10


# ---------------------------------------------------------------------------------------- the CLI


def wf(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main.cli, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


DEPLOYMENT = """
apiVersion: runtime.wasmcloud.dev/v1alpha1
kind: WorkloadDeployment
metadata:
  name: printer
spec:
  replicas: 2
  template:
    spec:
      components:
        - name: printer
          image: file://{image}
      hostInterfaces:
        - namespace: wasi
          package: http
          interfaces: [incoming-handler]
          config:
            host: printer.test
"""

UNPLACED = """
apiVersion: runtime.wasmcloud.dev/v1alpha1
kind: Workload
metadata:
  name: nowhere
spec:
  hostSelector: {{hostgroup: absent}}
  components:
    - name: printer
      image: file://{image}
"""


async def test_wasmfleet_logs_for_a_deployment_and_its_workloads(
    tmp_path: Path, bus: NatsServer, printer: Path
) -> None:
    with h.apiserver(tmp_path / "api") as kubeconfig:
        agent = Agent(settings(tmp_path, bus.url, workers=1))
        await agent.start()
        kube = await h.kube_client(kubeconfig)
        try:
            async with h.running_operator(h.operator_settings(kubeconfig, bus.url)):
                manifest = tmp_path / "printer.yaml"
                manifest.write_text(DEPLOYMENT.format(image=printer))
                k = str(kubeconfig)
                assert (await asyncio.to_thread(wf, "apply", "-f", str(manifest), "--kubeconfig", k))[0] == 0

                async def ready() -> list[dict[str, Any]] | None:
                    items, _ = await kube.list(rest_paths.WORKLOADS, "default",
                                               "runtime.wasmcloud.dev/workload-deployment=printer")
                    placed = [w for w in items if (w.get("status") or {}).get("hostId") and any(
                        c["type"] == "Ready" and c["status"] == "True" for c in w["status"].get("conditions", []))]
                    return placed if len(placed) == 2 else None

                workloads = await h.eventually(ready, 30, "two Ready printer workloads")
                names = sorted(w["metadata"]["name"] for w in workloads)
                for i in range(6):  # round robin over the two replicas
                    await get(agent.http_port, "printer.test", f"/r{i}")

                # The NATS URL comes from DATA_DIR/ports.json, as `wasmfleet up` writes it.
                data_dir = tmp_path / "up"
                data_dir.mkdir()
                (data_dir / "ports.json").write_text(json.dumps({"nats": int(bus.url.rsplit(":", 1)[1])}))
                common = ("--kubeconfig", k, "--data-dir", str(data_dir))
                code, out, err = await asyncio.to_thread(wf, "logs", "wd/printer", *common)
                assert code == 0, err
                rows = [line.split(" ", 1) for line in out.splitlines()]
                assert sorted(text for _, text in rows) == [f"request /r{i}" for i in range(6)]
                assert {prefix for prefix, _ in rows} == {f"[{n}]" for n in names}

                per_workload = []
                for name in names:
                    code, out, err = await asyncio.to_thread(wf, "logs", name, *common)
                    assert code == 0, err
                    per_workload.append(out.splitlines())
                    assert out.splitlines() and all(ln.startswith("request /r") for ln in out.splitlines())
                assert sorted(per_workload[0] + per_workload[1]) == [f"request /r{i}" for i in range(6)]
                code, out, _ = await asyncio.to_thread(wf, "logs", "printer", "--tail", "1", "--timestamps",
                                                       *common)
                assert code == 0 and len(out.splitlines()) == 2  # the deployment by bare name, 1 line each
                assert all(ln.split(" ")[0].endswith("Z") for ln in out.splitlines())

                code, _, err = await asyncio.to_thread(wf, "logs", "missing", *common)
                assert code == 1
                assert err.strip() == ('Error: no workload, workloaddeployment or workloadreplicaset "missing" '
                                       "in namespace default")
                unplaced = tmp_path / "nowhere.yaml"
                unplaced.write_text(UNPLACED.format(image=printer))
                assert (await asyncio.to_thread(wf, "apply", "-f", str(unplaced), "--kubeconfig", k))[0] == 0
                code, _, err = await asyncio.to_thread(wf, "logs", "ww/nowhere", *common)
                assert (code, err.strip()) == (1, "Error: workload nowhere is not placed on a host yet")
        finally:
            await kube.close()
            await agent.shutdown()
        # The host is gone: its workloads' Host is silent now.
        code, _, err = await asyncio.to_thread(wf, "logs", names[0], "--kubeconfig", k, "--nats", bus.url)
        assert code == 1
        assert err.strip().startswith(f"Error: host {agent.host_id} of workload {names[0]} is not answering")
