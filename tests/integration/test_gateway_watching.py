"""The gateway process logic against the real embedded API server (`wasmfleet apiserver` subprocess).

Hosts and Workloads are written to the API server as the operator would (objects + /status); the hosts'
HTTP ports are real aiohttp servers on loopback (the wasm path is covered in tests/e2e/).

Checks:
- a Ready Workload on a Host is routed by its config host; both replicas answer;
- a Workload turning not Ready leaves the table (its host gets no more requests); deleting the last one
  gives 503;
- a Workload with kubernetes.service is reachable as <svc>.<ns>.svc; an EndpointSlice labelled with the
  service name lists the serving hosts whose address Kubernetes accepts (the API server refuses loopback
  ones, as a real one does): a host on 127.0.0.1 is left out with one warning however many resyncs run,
  a host on 192.0.2.10 is listed; the slice is deleted when the workloads go away;
- /healthz turns 200 once the first lists arrived.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from wasmfleet.gateway import endpointslices, serving
from wasmfleet.gateway.settings import GatewaySettings
from wasmfleet.kube import client, rest_paths
from wasmfleet.testing.apiserver import running_apiserver

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def kubeconfig(tmp_path: Path) -> Iterator[Path]:
    with running_apiserver(tmp_path / "api") as path:
        yield path


async def upstream(name: str) -> tuple[web.AppRunner, int]:
    async def hello(_: web.Request) -> web.Response:
        return web.Response(text=name)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", hello)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]


async def put_host(kube: client.KubeClient, name: str, port: int, address: str = "127.0.0.1") -> None:
    await kube.create(rest_paths.HOSTS, "default", {
        "apiVersion": "runtime.wasmcloud.dev/v1alpha1", "kind": "Host",
        "metadata": {"name": name, "labels": {"hostgroup": "default"}},
        "hostId": f"id-{name}", "hostname": address, "httpPort": port,
    })
    await kube.patch(rest_paths.HOSTS, "default", name, {"status": {"conditions": [
        {"type": "Ready", "status": "True", "reason": "Heartbeat", "message": "",
         "lastTransitionTime": "2026-01-01T00:00:00Z"}]}}, subresource="status")


async def put_workload(kube: client.KubeClient, name: str, host: str, *, service: str | None = None) -> None:
    spec: dict[str, Any] = {
        "components": [{"name": "c", "image": "file:///dev/null"}],
        "hostInterfaces": [{"namespace": "wasi", "package": "http", "interfaces": ["incoming-handler"],
                            "config": {"host": "app.localhost"}}],
    }
    if service:
        spec["kubernetes"] = {"service": {"name": service}}
    await kube.create(rest_paths.WORKLOADS, "default", {
        "apiVersion": "runtime.wasmcloud.dev/v1alpha1", "kind": "Workload",
        "metadata": {"name": name}, "spec": spec,
    })
    await set_ready(kube, name, host, True)


async def set_ready(kube: client.KubeClient, name: str, host: str, ready: bool) -> None:
    await kube.patch(rest_paths.WORKLOADS, "default", name, {"status": {"hostId": f"id-{host}", "conditions": [
        {"type": "Ready", "status": "True" if ready else "False", "reason": "Test", "message": "",
         "lastTransitionTime": "2026-01-01T00:00:00Z"}]}}, subresource="status")


@pytest.fixture
async def fleet(kubeconfig: Path) -> AsyncIterator[tuple[client.KubeClient, str, list[int]]]:
    kube = await client.KubeClient.from_kubeconfig(kubeconfig)
    ups = [await upstream(f"h{i}") for i in range(2)]
    for i, (_, port) in enumerate(ups):
        await put_host(kube, f"h{i}", port)
    stop = asyncio.Event()
    urls: list[str] = []
    settings = GatewaySettings(port=0, slice_resync_s=1.0)
    task = asyncio.create_task(serving.run(kubeconfig, settings, on_listening=urls.append, stop=stop))
    while not urls:
        await asyncio.sleep(0.02)
    yield kube, urls[0], [p for _, p in ups]
    stop.set()
    await task
    for runner, _ in ups:
        await runner.cleanup()
    await kube.close()


async def poll(check: Any, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result or time.monotonic() > deadline:
            return result
        await asyncio.sleep(0.05)


async def answers(base: str, host: str, n: int = 6) -> list[str]:
    out = []
    async with aiohttp.ClientSession() as session:
        for _ in range(n):
            async with session.get(base + "/", headers={"Host": host}) as r:
                out.append(f"{r.status}:{await r.text()}".strip())
    return out


async def test_routes_follow_workload_readiness_and_deletion(
    fleet: tuple[client.KubeClient, str, list[int]],
) -> None:
    kube, base, _ = fleet
    async with aiohttp.ClientSession() as session:
        async def healthy() -> bool:
            async with session.get(base + "/healthz") as r:
                return r.status == 200

        assert await poll(healthy)
    await put_workload(kube, "w0", "h0")
    await put_workload(kube, "w1", "h1")

    async def both() -> bool:
        return set(await answers(base, "app.localhost")) == {"200:h0", "200:h1"}

    assert await poll(both)
    await set_ready(kube, "w0", "h0", False)

    async def only_h1() -> bool:
        return set(await answers(base, "app.localhost")) == {"200:h1"}

    assert await poll(only_h1)
    await kube.delete(rest_paths.WORKLOADS, "default", "w1")

    async def gone() -> bool:
        got = await answers(base, "app.localhost:8000", 1)
        return got[0].startswith("503:") and "app.localhost" in got[0]

    assert await poll(gone)


async def test_service_alias_and_endpointslice(
    fleet: tuple[client.KubeClient, str, list[int]], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=endpointslices.__name__)
    kube, base, _ = fleet
    await put_workload(kube, "api", "h1", service="api")

    async def routed() -> bool:
        return await answers(base, "api.default.svc", 2) == ["200:h1", "200:h1"]

    assert await poll(routed)
    # A host elsewhere (TEST-NET-1, never connected to here): an address an EndpointSlice may hold.
    await put_host(kube, "far", 9100, address="192.0.2.10")
    await put_workload(kube, "api-far", "far", service="api")

    async def slices() -> list[dict[str, Any]]:
        items, _ = await kube.list(endpointslices.ENDPOINTSLICES, "default",
                                   label_selector="kubernetes.io/service-name=api")
        return items

    found = await poll(slices)
    assert len(found) == 1
    assert found[0]["addressType"] == "IPv4"
    assert found[0]["ports"] == [{"name": "http", "port": 9100, "protocol": "TCP"}]
    assert [e["addresses"] for e in found[0]["endpoints"]] == [["192.0.2.10"]]
    assert found[0]["endpoints"][0]["targetRef"]["name"] == "far"
    await asyncio.sleep(2.5)  # two more full resyncs (slice_resync_s=1): the warning must not repeat
    warnings = [r.getMessage() for r in caplog.records if "127.0.0.1" in r.getMessage()]
    assert len(warnings) == 1, warnings
    assert "host h1" in warnings[0] and "loopback" in warnings[0] and "WASMFLEET_HOSTNAME" in warnings[0]
    await kube.delete(rest_paths.WORKLOADS, "default", "api")
    await kube.delete(rest_paths.WORKLOADS, "default", "api-far")

    async def no_slices() -> bool:
        return not await slices()

    assert await poll(no_slices)
