"""Host policy (host/policy.py): what a start request may ask, checked by a real host agent over NATS.

- a file:// image outside the allowed roots is refused (ERROR naming --allow-file-root), also through a
  symlink placed inside a root, and also when written as a bare absolute path; inside a root it runs;
- the check comes before any fetch: a workload whose second component is a forbidden file never asks
  the HTTP server serving its first component;
- a hostPath outside the allowed prefixes is refused naming --allow-host-path; inside one it must be an
  existing directory; a valid one is mounted and the workload runs;
- a memoryLimitMb above --max-component-memory-mb is refused naming the flag; a component without a
  limit gets the cap as its limit when the runtime's 512 MB default is above it (HostPolicy.check);
  the workload's service likewise;
- `wasmfleet host` without flags refuses every local file (/etc/hostname included).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import nats
import pytest
from aiohttp import web

from wasmfleet.artifacts.fetching import ArtifactSettings
from wasmfleet.bus import messages, subjects
from wasmfleet.host.agent import Agent
from wasmfleet.host.policy import HostPolicy, PolicyRefusal
from wasmfleet.host.settings import BusSettings, HostSettings, Identity, LifecycleSettings, ServingSettings
from wasmfleet.testing.nats import running_nats_server

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.components.build import build_component

WASMFLEET = str(Path(sys.executable).parent / "wasmfleet")


@pytest.fixture(scope="module")
def hello_wasm() -> Path:
    return build_component("hello-wat")


@pytest.fixture
def roots(tmp_path: Path, hello_wasm: Path) -> dict[str, Path]:
    images = tmp_path / "images"
    images.mkdir()
    (images / "hello.wasm").write_bytes(hello_wasm.read_bytes())
    (images / "escape.wasm").symlink_to("/etc/hostname")
    volumes = tmp_path / "volumes"
    (volumes / "shared").mkdir(parents=True)
    return {"images": images, "volumes": volumes}


@pytest.fixture
async def agent_and_bus(tmp_path: Path, roots: dict[str, Path]) -> AsyncIterator[tuple[Agent, nats.aio.client.Client]]:
    with running_nats_server(tmp_path / "nats") as url:
        agent = Agent(HostSettings(
            identity=Identity(labels={"hostgroup": "test"}),
            bus=BusSettings(nats_url=url, heartbeat_interval_s=1, reconnect_wait_s=0.1),
            serving=ServingSettings(http_host="127.0.0.1", http_port=0, workers=1),
            lifecycle=LifecycleSettings(drain_timeout_s=2, data_dir=tmp_path / "host"),
            artifacts=ArtifactSettings(cache_dir=tmp_path / "artifacts"),
            runtime_cache_dir=tmp_path / "compiled",
            policy=HostPolicy(file_roots=(roots["images"],), host_path_prefixes=(roots["volumes"],),
                              max_component_memory_mb=256),
        ))
        await agent.start()
        nc = await nats.connect(url)
        try:
            yield agent, nc
        finally:
            await nc.close()
            await agent.shutdown()


def request(workload_id: str, *images: str, volumes: list[messages.Volume] | None = None,
            memory_mb: int = 0) -> messages.WorkloadStartRequest:
    mounts = [messages.VolumeMount(name=v.name, mount_path=f"/{v.name}") for v in volumes or []]
    components = [
        messages.Component(name=f"c{i}", image=image, local_resources=messages.LocalResources(
            memory_limit_mb=memory_mb, volume_mounts=mounts))
        for i, image in enumerate(images)
    ]
    return messages.WorkloadStartRequest(workload_id=workload_id, workload=messages.Workload(
        namespace="default", name=workload_id, volumes=volumes or [],
        wit_world=messages.WitWorld(components=components, host_interfaces=[messages.WitInterface(
            namespace="wasi", package="http", interfaces=["incoming-handler"],
            config={"host": f"{workload_id}.test"})]),
    ))


async def start(pair: tuple[Agent, nats.aio.client.Client], req: messages.WorkloadStartRequest) -> dict[str, str]:
    agent, nc = pair
    reply = await nc.request(subjects.workload_start(agent.host_id), messages.encode(req), timeout=30)
    status: dict[str, str] = json.loads(reply.data)["workloadStatus"]
    return status


def host_path(name: str, path: Path | str) -> messages.Volume:
    return messages.Volume(name=name, host_path=messages.HostPathVolume(local_path=str(path)))


async def test_file_images_only_under_allowed_roots(
    agent_and_bus: tuple[Agent, nats.aio.client.Client], roots: dict[str, Path]
) -> None:
    ok = await start(agent_and_bus, request("inside", f"file://{roots['images'] / 'hello.wasm'}"))
    assert ok["workloadState"] == "WORKLOAD_STATE_RUNNING", ok
    for image in ("file:///etc/hostname", "/etc/hostname", f"file://{roots['images'] / 'escape.wasm'}",
                  f"file://{roots['images'] / '..' / 'images' / '..' / '..' / 'etc' / 'passwd'}"):
        refused = await start(agent_and_bus, request("outside", image))
        assert refused["workloadState"] == "WORKLOAD_STATE_ERROR", (image, refused)
        assert "outside the roots this host allows" in refused["message"], refused
        assert "--allow-file-root" in refused["message"]


async def test_policy_is_checked_before_anything_is_fetched(
    agent_and_bus: tuple[Agent, nats.aio.client.Client], hello_wasm: Path
) -> None:
    asked: list[str] = []

    async def serve(request: web.Request) -> web.Response:
        asked.append(request.path)
        return web.Response(body=hello_wasm.read_bytes())

    app = web.Application()
    app.router.add_get("/hello.wasm", serve)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        url = f"http://127.0.0.1:{port}/hello.wasm"
        refused = await start(agent_and_bus, request("mixed", url, "file:///etc/hostname"))
        assert refused["workloadState"] == "WORKLOAD_STATE_ERROR" and "component c1" in refused["message"]
        assert asked == []  # the allowed http image was not fetched either
        fine = await start(agent_and_bus, request("http-only", url))
        assert fine["workloadState"] == "WORKLOAD_STATE_RUNNING", fine
        assert asked == ["/hello.wasm"]  # the server works: the empty list above is the policy's doing
    finally:
        await runner.cleanup()


async def test_host_paths_only_under_allowed_prefixes(
    agent_and_bus: tuple[Agent, nats.aio.client.Client], roots: dict[str, Path], tmp_path: Path
) -> None:
    image = f"file://{roots['images'] / 'hello.wasm'}"
    outside = await start(agent_and_bus, request("etc", image, volumes=[host_path("etc", "/etc")]))
    assert outside["workloadState"] == "WORKLOAD_STATE_ERROR"
    assert "hostPath /etc is outside the prefixes this host allows" in outside["message"]
    assert "--allow-host-path" in outside["message"]
    (roots["volumes"] / "sneaky").symlink_to(tmp_path)
    via_link = await start(agent_and_bus, request("link", image, volumes=[host_path("v", roots["volumes"] / "sneaky")]))
    assert "outside the prefixes" in via_link["message"], via_link
    missing = await start(agent_and_bus, request("missing", image,
                                                 volumes=[host_path("v", roots["volumes"] / "absent")]))
    assert missing["workloadState"] == "WORKLOAD_STATE_ERROR"
    assert "is not an existing directory" in missing["message"]
    good = await start(agent_and_bus, request("good", image, volumes=[host_path("v", roots["volumes"] / "shared")]))
    assert good["workloadState"] == "WORKLOAD_STATE_RUNNING", good


async def test_memory_cap(agent_and_bus: tuple[Agent, nats.aio.client.Client], roots: dict[str, Path]) -> None:
    image = f"file://{roots['images'] / 'hello.wasm'}"
    big = await start(agent_and_bus, request("big", image, memory_mb=1024))
    assert big["workloadState"] == "WORKLOAD_STATE_ERROR"
    assert big["message"] == ("component c0: memoryLimitMb 1024 exceeds this host's cap of 256 MB; "
                              "see the host's --max-component-memory-mb")
    small = await start(agent_and_bus, request("small", image, memory_mb=128))
    assert small["workloadState"] == "WORKLOAD_STATE_RUNNING", small
    unset = await start(agent_and_bus, request("unset", image))
    assert unset["workloadState"] == "WORKLOAD_STATE_RUNNING", unset


def test_a_component_without_a_limit_gets_the_cap(roots: dict[str, Path]) -> None:
    policy = HostPolicy(file_roots=(roots["images"],), max_component_memory_mb=256)
    workload = request("w", f"file://{roots['images'] / 'hello.wasm'}", memory_mb=0).workload
    checked = policy.check(workload)
    assert checked.wit_world.components[0].local_resources.memory_limit_mb == 256
    assert workload.wit_world.components[0].local_resources.memory_limit_mb == 0  # the request is not mutated
    # A cap above the runtime's default (512 MB) leaves an unset limit to that default.
    roomy = HostPolicy(file_roots=(roots["images"],), max_component_memory_mb=1024).check(workload)
    assert roomy.wit_world.components[0].local_resources.memory_limit_mb == 0
    with pytest.raises(PolicyRefusal, match="--allow-file-root"):
        HostPolicy().check(workload)


def test_the_service_is_capped_like_a_component(roots: dict[str, Path]) -> None:
    image = f"file://{roots['images'] / 'hello.wasm'}"
    workload = request("w", image).workload
    workload.service = messages.Service(image=image)
    capped = HostPolicy(file_roots=(roots["images"],), max_component_memory_mb=256).check(workload)
    assert capped.service is not None and capped.service.local_resources.memory_limit_mb == 256
    assert workload.service.local_resources.memory_limit_mb == 0  # the request is not mutated
    workload.service = messages.Service(image=image, local_resources=messages.LocalResources(memory_limit_mb=1024))
    with pytest.raises(PolicyRefusal, match=r"^service: memoryLimitMb 1024 exceeds this host's cap of 256 MB"):
        HostPolicy(file_roots=(roots["images"],), max_component_memory_mb=256).check(workload)


async def test_host_command_refuses_local_files_by_default(tmp_path: Path, roots: dict[str, Path]) -> None:
    with running_nats_server(tmp_path / "nats") as url:
        nc = await nats.connect(url)
        heartbeats = await nc.subscribe(subjects.operator_heartbeats())
        proc = subprocess.Popen(
            [WASMFLEET, "host", "--nats", url, "--heartbeat-interval", "0.5", "--data-dir", str(tmp_path / "h"),
             "--cache-dir", str(tmp_path / "cache"), "--log-level", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ),
        )
        try:
            host_id = json.loads((await heartbeats.next_msg(timeout=30)).data)["id"]
            for image in ("file:///etc/hostname", f"file://{roots['images'] / 'hello.wasm'}"):
                reply = await nc.request(subjects.workload_start(host_id),
                                         messages.encode(request("w", image)), timeout=30)
                status = json.loads(reply.data)["workloadStatus"]
                assert status["workloadState"] == "WORKLOAD_STATE_ERROR", status
                assert "(none); see the host's --allow-file-root" in status["message"], status
        finally:
            proc.terminate()
            proc.wait(20)
            await nc.close()


def test_the_cpu_cap_bounds_cpu_limits_and_fills_in_unset_ones(roots: dict[str, Path]) -> None:
    """--max-component-cpu: a cpuLimit above it is refused naming the flag; a component or service
    without one gets the cap; one within it keeps its own; the request itself is not changed."""
    image = f"file://{roots['images'] / 'hello.wasm'}"
    policy = HostPolicy(file_roots=(roots["images"],), max_component_cpu_millicores=500)
    workload = request("w", image, image).workload
    workload.wit_world.components[1].local_resources.cpu_limit = 250
    workload.service = messages.Service(image=image)
    checked = policy.check(workload)
    assert [c.local_resources.cpu_limit for c in checked.wit_world.components] == [500, 250]
    assert checked.service is not None and checked.service.local_resources.cpu_limit == 500
    assert workload.wit_world.components[0].local_resources.cpu_limit == 0
    workload.wit_world.components[1].local_resources.cpu_limit = 2000
    with pytest.raises(PolicyRefusal, match=r"^component c1: cpuLimit 2000 millicores exceeds this host's cap "
                                            r"of 500; see the host's --max-component-cpu$"):
        policy.check(workload)
