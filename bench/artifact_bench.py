"""Benchmark of component delivery: JetStream Object Store vs a direct registry pull. Not a test.

Runs a real docker-registry and a real nats-server (JetStream on, file storage), pushes the
componentize-js hello guest (~13 MB) to the registry and publishes it to the Object Store
(wasmfleet.artifacts.publishing), then measures, alternating the order each round:

1. fetch: a host Fetcher with an EMPTY artifact cache fetching `nats://wasmfleet-artifacts/<digest>`
   vs the same Fetcher kind pulling `<registry>/bench/hello-js:1` (manifest + blob, digest checked).
2. cold start: workload.start over NATS -> first HTTP 200 on a real host agent whose artifact cache is
   emptied before every round (its compiled-code cache is warm, so the difference is the delivery
   path, not the 13 MB compile), for the nats:// URL vs the registry reference.

Prints medians and the ratio registry / object store (> 1: the Object Store is faster).

    .venv/bin/python bench/artifact_bench.py [--rounds 7] [--start-rounds 5] [--guest hello-js]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import nats

from wasmfleet.artifacts import publishing
from wasmfleet.artifacts.fetching import ArtifactSettings, Fetcher
from wasmfleet.bus import messages, subjects
from wasmfleet.host.agent import Agent
from wasmfleet.host.settings import BusSettings, HostSettings, Identity, LifecycleSettings, ServingSettings
from wasmfleet.testing.nats import nats_server
from wasmfleet.testing.oci_registry_server import push_wasm, running_registry

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.components.build import build_component


async def fetch_once(image: str, cache_dir: Path, nc: object) -> float:
    shutil.rmtree(cache_dir, ignore_errors=True)
    async with Fetcher(ArtifactSettings(cache_dir=cache_dir)) as fetcher:
        fetcher.attach_nats(nc)
        began = time.perf_counter()
        got = await fetcher.fetch(image)
        elapsed = time.perf_counter() - began
    assert got.downloaded
    return elapsed


async def first_200(port: int, host: str, deadline_s: float = 120.0) -> None:
    async with aiohttp.ClientSession() as session:
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            async with session.get(f"http://127.0.0.1:{port}/", headers={"Host": host}) as response:
                if response.status == 200:
                    return
            await asyncio.sleep(0.005)
    raise RuntimeError(f"{host}: no 200 within {deadline_s}s")


async def start_once(agent: Agent, nc: nats.aio.client.Client, image: str, workload_id: str) -> float:
    # An empty artifact cache: the component must come over the wire again.
    for path in agent.fetcher.cache.blob_dir.iterdir():
        path.unlink()
    host = f"{workload_id}.bench"
    request = messages.WorkloadStartRequest(
        workload_id=workload_id,
        workload=messages.Workload(
            namespace="bench", name=workload_id,
            wit_world=messages.WitWorld(
                components=[messages.Component(name="hello", image=image)],
                host_interfaces=[messages.WitInterface(
                    namespace="wasi", package="http", interfaces=["incoming-handler"], config={"host": host})],
            ),
        ),
    )
    began = time.perf_counter()
    reply = await nc.request(subjects.host_command(agent.host_id, subjects.WORKLOAD_START),
                             messages.encode(request), timeout=300)
    await first_200(agent.http_port, host)
    elapsed = time.perf_counter() - began
    assert b"RUNNING" in reply.data, reply.data
    await nc.request(subjects.host_command(agent.host_id, subjects.WORKLOAD_STOP),
                     messages.encode(messages.WorkloadStopRequest(workload_id=workload_id)), timeout=60)
    return elapsed


def report(title: str, store: list[float], registry: list[float], size: int | None) -> None:
    """Medians (and throughput when `size` is given: only for pure transfers)."""
    s, r = statistics.median(store), statistics.median(registry)
    print(f"\n{title} ({len(store)} rounds each, median; min..max)")
    for label, median, values in (("object store  nats://", s, store), ("registry      direct ", r, registry)):
        rate = f"  {size / median / 1e6:7.1f} MB/s" if size else ""
        print(f"  {label}  {median * 1000:8.1f} ms  ({min(values) * 1000:.1f}..{max(values) * 1000:.1f}){rate}")
    print(f"  ratio registry / object store: {r / s:.2f}x")


async def main(args: argparse.Namespace) -> None:
    wasm = build_component(args.guest).read_bytes()
    with tempfile.TemporaryDirectory(prefix="artifact-bench-") as tmp_name:
        tmp = Path(tmp_name)
        with running_registry(tmp / "registry") as registry, nats_server(tmp / "nats") as bus:
            push_wasm(registry, f"bench/{args.guest}", "1", wasm)
            image = f"{registry.host}/bench/{args.guest}:1"
            nc = await nats.connect(bus.url)
            began = time.perf_counter()
            published = await publishing.publish(image, None, nc)
            print(f"component: {args.guest}, {len(wasm) / 1e6:.1f} MB, {published.digest[:19]}...")
            print(f"publish (pull from registry + verify + put into the object store): "
                  f"{(time.perf_counter() - began) * 1000:.0f} ms, once per digest")

            store_t: list[float] = []
            registry_t: list[float] = []
            for round_ in range(args.rounds):
                order = [(published.url, store_t), (image, registry_t)]
                for ref, out in order if round_ % 2 == 0 else reversed(order):
                    out.append(await fetch_once(ref, tmp / "fetch-cache", nc))
            report("fetch into an empty cache", store_t, registry_t, len(wasm))

            if args.start_rounds:
                agent = Agent(HostSettings(
                    identity=Identity(labels={"hostgroup": "bench"}, environment="bench"),
                    bus=BusSettings(nats_url=bus.url),
                    serving=ServingSettings(http_host="127.0.0.1", http_port=0, workers=1),
                    lifecycle=LifecycleSettings(data_dir=tmp / "host"),
                    artifacts=ArtifactSettings(cache_dir=tmp / "host-artifacts"),
                    runtime_cache_dir=tmp / "compiled",
                ))
                await agent.start()
                try:
                    await start_once(agent, nc, published.url, "warmup")  # compiles once, fills the code cache
                    store_s: list[float] = []
                    registry_s: list[float] = []
                    for round_ in range(args.start_rounds):
                        order = [(published.url, store_s, "s"), (image, registry_s, "r")]
                        for ref, out, tag in order if round_ % 2 == 0 else reversed(order):
                            out.append(await start_once(agent, nc, ref, f"w{tag}{round_}"))
                    report("cold start: start request -> first HTTP 200, empty artifact cache",
                           store_s, registry_s, None)
                finally:
                    await agent.shutdown()
            await nc.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=7, help="fetch rounds per source")
    parser.add_argument("--start-rounds", type=int, default=5, help="cold-start rounds per source (0: skip)")
    parser.add_argument("--guest", default="hello-js", help="test guest from tests/components")
    asyncio.run(main(parser.parse_args()))
