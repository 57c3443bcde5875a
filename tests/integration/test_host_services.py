"""A workload's service on a real host agent: a real nats-server, the protocol over NATS, and a real
C command component (tests/components/service-c: clang + wasi-libc + the preview1 adapter) run as
the service next to a real HTTP component (hello-wat).

Checks:
- a service that prints: its stdout and stderr lines reach the workload's log (workload.logs, as
  `wasmfleet logs` reads it) as component "service", whole lines; its environment and its
  volumeMount (a preopen) reach it; the workload is RUNNING with service state running, and the
  HTTP component next to it serves, with the components in the agent or in two worker processes;
- exit 1 with maxRestarts 2: restarted twice, with the backoff between runs (0.5 s, then 1 s), then
  failed for good with its last error and exit code; the workload stays RUNNING, its components
  serve, the host answers, and its restarts metric counts 2;
- exit 0: completed, never restarted;
- a trap: restarted, last error "trap: ..." with exit code 134, then failed at maxRestarts 1;
- stop cancels a service computing forever (only the epoch interruption reaches it) and one
  waiting in a host call (sleep), each within the bound, and no service thread is left; so does the
  host's own shutdown;
- bad input: an image that is not a command (no wasi:cli/run) fails the start with a permanent
  ERROR naming the service; a volumeMount naming no volume fails it naming the service.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import nats
import pytest

from wasmfleet.artifacts.fetching import ArtifactSettings
from wasmfleet.bus import messages, subjects
from wasmfleet.host.agent import Agent
from wasmfleet.host.policy import HostPolicy
from wasmfleet.host.settings import BusSettings, HostSettings, Identity, LifecycleSettings, ServingSettings
from wasmfleet.testing.nats import NatsServer, nats_server

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.components.build import build_component, cache_dir

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def service_wasm() -> Path:
    return build_component("service-c")


@pytest.fixture(scope="module")
def hello_wasm() -> Path:
    return build_component("hello-wat")


@pytest.fixture
def bus(tmp_path: Path) -> Iterator[NatsServer]:
    with nats_server(tmp_path / "nats") as server:
        yield server


@pytest.fixture
async def nc(bus: NatsServer) -> AsyncIterator[Any]:
    client = await nats.connect(bus.url)
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
def workers() -> int:
    return 1


@pytest.fixture
async def agent(tmp_path: Path, bus: NatsServer, workers: int) -> AsyncIterator[Agent]:
    host = Agent(HostSettings(
        identity=Identity(labels={"hostgroup": "default"}),
        bus=BusSettings(nats_url=bus.url, heartbeat_interval_s=0.3, reconnect_wait_s=0.1),
        serving=ServingSettings(http_host="127.0.0.1", http_port=0, workers=workers),
        lifecycle=LifecycleSettings(drain_timeout_s=2, data_dir=tmp_path / "host"),
        artifacts=ArtifactSettings(cache_dir=tmp_path / "artifacts"),
        runtime_cache_dir=tmp_path / "compiled",
        policy=HostPolicy.allowing(cache_dir(), tmp_path),  # the built guests, and hostPath volumes here
    ))
    await host.start()
    try:
        yield host
    finally:
        await host.shutdown()


def workload(workload_id: str, service_image: Path, env: dict[str, str], *, max_restarts: int = 0,
             mark: Path | None = None, http: Path | None = None) -> messages.WorkloadStartRequest:
    mounts, volumes = [], []
    if mark is not None:
        mark.mkdir(parents=True, exist_ok=True)
        volumes = [messages.Volume(name="marks", host_path=messages.HostPathVolume(local_path=str(mark)))]
        mounts = [messages.VolumeMount(name="marks", mount_path="/marks")]
        env = {**env, "SERVICE_MARK": "/marks"}
    components, interfaces = [], []
    if http is not None:
        components = [messages.Component(name="web", image=f"file://{http}")]
        interfaces = [messages.WitInterface(namespace="wasi", package="http", interfaces=["incoming-handler"],
                                            config={"host": f"{workload_id}.test"})]
    return messages.WorkloadStartRequest(
        workload_id=workload_id,
        workload=messages.Workload(
            namespace="default", name=workload_id,
            service=messages.Service(
                image=f"file://{service_image}", max_restarts=max_restarts,
                local_resources=messages.LocalResources(environment=env, volume_mounts=mounts)),
            wit_world=messages.WitWorld(components=components, host_interfaces=interfaces),
            volumes=volumes,
        ),
    )


async def start(nc: Any, agent: Agent, request: messages.WorkloadStartRequest) -> messages.WorkloadStatus:
    reply = await nc.request(subjects.workload_start(agent.host_id), messages.encode(request), timeout=60)
    return messages.decode(messages.WorkloadStartResponse, reply.data).workload_status


async def status(nc: Any, agent: Agent, workload_id: str) -> messages.WorkloadStatus:
    reply = await nc.request(subjects.workload_status(agent.host_id),
                             json.dumps({"workloadId": workload_id}).encode(), timeout=5)
    return messages.decode(messages.WorkloadStatusResponse, reply.data).workload_status


async def service_reaches(nc: Any, agent: Agent, workload_id: str, state: str,
                          timeout: float = 20.0) -> messages.ServiceStatus:
    deadline = time.monotonic() + timeout
    while True:
        current = await status(nc, agent, workload_id)
        assert current.workload_state is messages.WorkloadState.RUNNING, current
        assert current.service is not None, current
        if current.service.state == state:
            return current.service
        assert time.monotonic() < deadline, f"service never {state}: {current.service}"
        await asyncio.sleep(0.05)


async def log_lines(nc: Any, agent: Agent, workload_id: str) -> list[dict[str, Any]]:
    reply = await nc.request(subjects.workload_logs(agent.host_id),
                             json.dumps({"workloadId": workload_id}).encode(), timeout=10)
    lines: list[dict[str, Any]] = json.loads(reply.data)["lines"]
    return lines


async def lines_appear(nc: Any, agent: Agent, workload_id: str, wanted: set[str], timeout: float = 10.0) -> list[Any]:
    deadline = time.monotonic() + timeout
    while True:
        lines = await log_lines(nc, agent, workload_id)
        if wanted <= {ln["text"] for ln in lines}:
            return lines
        assert time.monotonic() < deadline, f"{wanted} not in {lines}"
        await asyncio.sleep(0.05)


async def http_ok(agent: Agent, host: str) -> None:
    async with aiohttp.ClientSession() as session, session.get(
        f"http://127.0.0.1:{agent.http_port}/", headers={"Host": host}
    ) as response:
        assert response.status == 200, await response.text()


async def host_answers(nc: Any, agent: Agent) -> None:
    reply = await nc.request(subjects.host_heartbeat(agent.host_id), b"{}", timeout=5)
    assert messages.decode(messages.HostHeartbeat, reply.data).id == agent.host_id


def runs(mark: Path) -> int:
    path = mark / "runs"
    return len(path.read_text().splitlines()) if path.exists() else 0


def service_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("service ")]


@pytest.mark.parametrize("workers", [1, 2], ids=["one-process", "two-workers"])
async def test_a_printing_service_runs_next_to_the_components_and_its_output_reaches_the_log(
    tmp_path: Path, nc: Any, agent: Agent, service_wasm: Path, hello_wasm: Path
) -> None:
    mark = tmp_path / "marks-print"
    started = await start(nc, agent, workload("w-print", service_wasm, {"SERVICE_MODE": "serve"},
                                              mark=mark, http=hello_wasm))
    assert started.workload_state is messages.WorkloadState.RUNNING, started.message
    assert started.service is not None and started.service.state == "running"
    assert started.service.max_restarts == 10  # unset on the wire: the host's default
    lines = await lines_appear(nc, agent, "w-print", {"service up", "service warming up"})
    assert all(ln["text"] for ln in lines), lines  # whole lines, not one per write or flush
    by_text = {ln["text"]: ln for ln in lines}
    assert (by_text["service up"]["stream"], by_text["service up"]["component"]) == ("stdout", "service")
    assert (by_text["service warming up"]["stream"], by_text["service warming up"]["component"]) == \
        ("stderr", "service")
    assert runs(mark) == 1  # the volumeMount is a preopen the service writes to
    await http_ok(agent, "w-print.test")
    current = await status(nc, agent, "w-print")
    assert current.service is not None and current.service.state == "running"
    assert current.service.restart_count == 0 and current.service.last_exit_code is None
    assert [c.name for c in current.components] == ["web"]


async def test_an_error_exit_is_restarted_with_backoff_until_max_restarts(
    tmp_path: Path, nc: Any, agent: Agent, service_wasm: Path, hello_wasm: Path
) -> None:
    mark = tmp_path / "marks-exit1"
    began = time.monotonic()
    started = await start(nc, agent, workload("w-exit1", service_wasm, {"SERVICE_MODE": "exit", "SERVICE_EXIT": "1"},
                                              max_restarts=2, mark=mark, http=hello_wasm))
    assert started.workload_state is messages.WorkloadState.RUNNING, started.message
    failed = await service_reaches(nc, agent, "w-exit1", "failed")
    took = time.monotonic() - began
    assert failed.restart_count == 2 and failed.max_restarts == 2
    assert failed.last_exit_code == 1 and failed.last_error == "exit code 1"
    assert failed.last_exit_time is not None
    assert "maxRestarts (2) reached" in failed.message and "exit code 1" in failed.message
    assert took >= 0.5 + 1.0, f"three runs {took:.2f}s apart in all: no backoff between them"
    assert runs(mark) == 3
    assert agent.metrics.registry.get_sample_value("wasmfleet_host_service_restarts_total") == 2
    lines = await log_lines(nc, agent, "w-exit1")
    assert [ln["text"] for ln in lines].count("service exiting with 1") == 3
    await asyncio.sleep(1.5)  # failed for good: no further run
    assert runs(mark) == 3
    current = await status(nc, agent, "w-exit1")
    assert current.workload_state is messages.WorkloadState.RUNNING
    assert "service exit code 1; not restarted" in current.message
    await http_ok(agent, "w-exit1.test")  # the components still serve
    await host_answers(nc, agent)


async def test_a_clean_exit_completes_and_is_not_restarted(
    tmp_path: Path, nc: Any, agent: Agent, service_wasm: Path
) -> None:
    mark = tmp_path / "marks-exit0"
    await start(nc, agent, workload("w-exit0", service_wasm, {"SERVICE_MODE": "exit", "SERVICE_EXIT": "0"},
                                    mark=mark))
    done = await service_reaches(nc, agent, "w-exit0", "completed")
    assert done.restart_count == 0 and done.last_exit_code == 0 and done.last_error == ""
    await asyncio.sleep(1.0)  # longer than the first backoff: a restart would have happened
    assert runs(mark) == 1
    assert (await status(nc, agent, "w-exit0")).service.state == "completed"  # type: ignore[union-attr]


async def test_a_trap_is_restarted_and_reported(
    tmp_path: Path, nc: Any, agent: Agent, service_wasm: Path
) -> None:
    mark = tmp_path / "marks-trap"
    await start(nc, agent, workload("w-trap", service_wasm, {"SERVICE_MODE": "trap"}, max_restarts=1, mark=mark))
    failed = await service_reaches(nc, agent, "w-trap", "failed")
    assert failed.restart_count == 1 and failed.last_exit_code == 134
    assert failed.last_error.startswith("trap: ") and "unreachable" in failed.last_error, failed.last_error
    assert len(failed.last_error) <= 300
    assert runs(mark) == 2
    await host_answers(nc, agent)


@pytest.mark.parametrize("mode", ["spin", "serve"])
async def test_stop_cancels_the_service_within_the_bound(
    tmp_path: Path, nc: Any, agent: Agent, service_wasm: Path, mode: str
) -> None:
    wid = f"w-stop-{mode}"
    await start(nc, agent, workload(wid, service_wasm, {"SERVICE_MODE": mode}))
    await lines_appear(nc, agent, wid, {"service spinning" if mode == "spin" else "service up"})
    assert any(name == f"service {wid}" for name in service_threads())
    began = time.monotonic()
    reply = await nc.request(subjects.workload_stop(agent.host_id), json.dumps({"workloadId": wid}).encode(),
                             timeout=10)
    took = time.monotonic() - began
    assert messages.decode(messages.WorkloadStopResponse, reply.data).workload_status.message == "stopped"
    # Cancellation: the next epoch check (100 ms) computing, a second at most waiting in a host call;
    # the supervisor gives up after 5 s, which would still pass this bound but leave the thread.
    assert took < 5.0, f"stop took {took:.2f}s"
    assert f"service {wid}" not in service_threads()
    assert (await status(nc, agent, wid)).workload_state is messages.WorkloadState.NOT_FOUND
    await host_answers(nc, agent)


async def test_host_shutdown_cancels_its_services(nc: Any, agent: Agent, service_wasm: Path) -> None:
    for mode in ("spin", "serve"):
        await start(nc, agent, workload(f"w-down-{mode}", service_wasm, {"SERVICE_MODE": mode}))
    assert {"service w-down-spin", "service w-down-serve"} <= set(service_threads())
    began = time.monotonic()
    await agent.shutdown()
    assert time.monotonic() - began < 2 + 5, "longer than the drain timeout and the stop overhead"
    # Cancelled runs end soon after (an abandoned spinning thread would never end); polled, since
    # on a loaded machine a cancelled thread may wait a while for a core.
    for _ in range(50):
        if not {"service w-down-spin", "service w-down-serve"} & set(service_threads()):
            break
        await asyncio.sleep(0.1)
    assert not {"service w-down-spin", "service w-down-serve"} & set(service_threads())


async def test_a_service_that_is_not_a_command_fails_the_start_naming_it(
    tmp_path: Path, nc: Any, agent: Agent, hello_wasm: Path, service_wasm: Path
) -> None:
    refused = await start(nc, agent, workload("w-notcmd", hello_wasm, {}))
    assert refused.workload_state is messages.WorkloadState.ERROR
    assert not refused.retryable
    assert refused.message.startswith(f"service file://{hello_wasm}: ") and "wasi:cli/run" in refused.message, \
        refused.message
    bad_mount = workload("w-badmount", service_wasm, {})
    assert bad_mount.workload.service is not None
    bad_mount.workload.service.local_resources.volume_mounts = [messages.VolumeMount(name="nope", mount_path="/x")]
    refused = await start(nc, agent, bad_mount)
    assert refused.workload_state is messages.WorkloadState.ERROR and not refused.retryable
    assert refused.message == "service: volumeMount 'nope' names no workload volume"
    await host_answers(nc, agent)
