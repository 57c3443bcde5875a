"""Every route name reaches the workload through the gateway and a real host (issue 11).

All real: nats-server, the embedded API server (subprocess), the operator and a host agent running the
hello-wat component (in process), and the gateway (in process, real TCP). A WorkloadDeployment in
namespace ``apps`` sets ``kubernetes.service.name: hello`` at its top level (upstream's place) and its
wasi:http entry has ``host: "hello.localhost, hello-alt.localhost"`` and ``host-aliases: alias.example``.

Checks:
- the deployment's spec.kubernetes reaches its ReplicaSet's template and its Workload;
- through the gateway, each name form answers 200 from the component: the main host, the comma alias,
  the host-aliases entry, ``hello.apps``, ``hello.apps.svc``, ``hello.apps.svc.cluster.local``, an
  upper-case spelling, one with a port, one with a trailing dot;
- the guest sees, as its request's authority, exactly the Host header the client sent (the gateway does
  not rewrite it);
- the host itself, asked directly (as a Kubernetes Service's EndpointSlice would send traffic), accepts
  the Service names too and refuses an unknown name with 404 and the no-route header;
- an unknown name gets the gateway's 503 (not a 502 from a host refusing a name the gateway routed).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import operator_harness as h
import pytest

from wasmfleet.artifacts.fetching import ArtifactSettings
from wasmfleet.bus import http_routing
from wasmfleet.gateway import serving
from wasmfleet.gateway.settings import GatewaySettings
from wasmfleet.host.agent import Agent
from wasmfleet.host.policy import HostPolicy
from wasmfleet.host.settings import BusSettings, HostSettings, Identity, LifecycleSettings, ServingSettings
from wasmfleet.kube import client, rest_paths
from wasmfleet.testing import nats as nats_helper

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.components.build import build_component, cache_dir

pytestmark = pytest.mark.timeout(120)

NS = "apps"
NAME_FORMS = [
    "hello.localhost",
    "hello-alt.localhost",
    "alias.example",
    "hello.apps",
    "hello.apps.svc",
    "hello.apps.svc.cluster.local",
    "HELLO.LocalHost",
    "hello.localhost:8000",
    "hello.localhost.",
    "Hello.Apps.Svc.:80",
]


@dataclass
class Fleet:
    kube: client.KubeClient
    gateway: str
    host: Agent


def deployment(wasm: Path) -> dict[str, Any]:
    return {
        "apiVersion": "runtime.wasmcloud.dev/v1alpha1",
        "kind": "WorkloadDeployment",
        "metadata": {"name": "hello", "namespace": NS},
        "spec": {
            "replicas": 1,
            "kubernetes": {"service": {"name": "hello"}},
            "template": {"spec": {
                "components": [{"name": "hello", "image": wasm.as_uri()}],
                "hostInterfaces": [{
                    "namespace": "wasi", "package": "http", "interfaces": ["incoming-handler"],
                    "config": {"host": "hello.localhost, hello-alt.localhost", "host-aliases": "alias.example"},
                }],
            }},
        },
    }


@pytest.fixture
async def fleet(tmp_path: Path) -> AsyncIterator[Fleet]:
    wasm = build_component("hello-wat")
    with nats_helper.running_nats_server(tmp_path / "nats") as url, h.apiserver(tmp_path / "api") as kubeconfig:
        kube = await h.kube_client(kubeconfig)
        host = Agent(HostSettings(
            identity=Identity(labels={"hostgroup": "default"}),
            bus=BusSettings(nats_url=url, heartbeat_interval_s=0.3, reconnect_wait_s=0.1),
            serving=ServingSettings(http_host="127.0.0.1", http_port=0, workers=1),
            lifecycle=LifecycleSettings(drain_timeout_s=2, data_dir=tmp_path / "host"),
            artifacts=ArtifactSettings(cache_dir=tmp_path / "artifacts"),
            runtime_cache_dir=tmp_path / "compiled",
            policy=HostPolicy.allowing(cache_dir()),  # the built test guests
        ))
        await host.start()
        stop = asyncio.Event()
        urls: list[str] = []
        gateway = asyncio.create_task(serving.run(kubeconfig, GatewaySettings(port=0), endpoint_slices=False,
                                                  on_listening=urls.append, stop=stop))
        try:
            async with h.running_operator(h.operator_settings(kubeconfig, url)):
                await h.eventually(lambda: asyncio.sleep(0.02, urls), what="gateway listening")
                await kube.create(rest_paths.NAMESPACES, "", {"apiVersion": "v1", "kind": "Namespace",
                                                              "metadata": {"name": NS}})
                await kube.create(rest_paths.DEPLOYMENTS, NS, deployment(wasm))
                yield Fleet(kube, urls[0], host)
        finally:
            stop.set()
            await gateway
            await host.shutdown()
            await kube.close()


async def ready_workload(kube: client.KubeClient) -> dict[str, Any] | None:
    items, _ = await kube.list(rest_paths.WORKLOADS, NS)
    for w in items:
        if any(c["type"] == "Ready" and c["status"] == "True" for c in w.get("status", {}).get("conditions", [])):
            return w
    return None


async def get(session: aiohttp.ClientSession, url: str, host: str) -> tuple[int, str, str]:
    async with session.get(url, headers={"Host": host}) as r:
        return r.status, await r.text(), r.headers.get(http_routing.NO_ROUTE_HEADER, "")


async def test_every_route_name_reaches_the_workload_through_the_gateway(fleet: Fleet) -> None:
    workload = await h.eventually(lambda: ready_workload(fleet.kube), what="a Ready Workload")
    assert workload["spec"]["kubernetes"] == {"service": {"name": "hello"}}
    sets, _ = await fleet.kube.list(rest_paths.REPLICASETS, NS)
    assert [s["spec"]["template"]["spec"]["kubernetes"] for s in sets] == [{"service": {"name": "hello"}}]

    async with aiohttp.ClientSession() as session:
        async def all_routed() -> bool:  # the gateway's watch may trail the Ready condition briefly
            return all([(await get(session, fleet.gateway + "/", n))[0] == 200 for n in NAME_FORMS])

        await h.eventually(all_routed, timeout_s=15, what="every name form routed")
        for name in NAME_FORMS:
            status, body, _ = await get(session, fleet.gateway + "/", name)
            assert (status, body) == (200, "hello from wat\n"), name
            status, authority, _ = await get(session, fleet.gateway + "/authority", name)
            assert (status, authority) == (200, name), f"the guest saw {authority!r} for Host {name!r}"

        status, body, _ = await get(session, fleet.gateway + "/", "nobody.apps.svc")
        assert status == 503 and "nobody.apps.svc" in body


async def test_the_host_itself_accepts_the_service_names(fleet: Fleet) -> None:
    await h.eventually(lambda: ready_workload(fleet.kube), what="a Ready Workload")
    direct = f"http://127.0.0.1:{fleet.host.http_port}"
    async with aiohttp.ClientSession() as session:
        for name in ("hello.apps", "hello.apps.svc", "hello.apps.svc.cluster.local", "alias.example"):
            assert await get(session, direct + "/", name) == (200, "hello from wat\n", ""), name
        status, body, marker = await get(session, direct + "/", "hello.other.svc")
        assert (status, marker) == (404, "1") and "hello.other.svc" in body
