"""wasmcloud:messaging@0.2.0 over a real nats-server, with real host agents and wasm components.

The handler is tests/components/messaging-wat (hand-written WAT: replies upper-cased to reply-to,
publishes other messages unchanged to "handled", traps on a body starting "trap", spins on one
starting "spin"). Hosts run in this process with worker processes (workers=2) unless said.

Checks:
- each message invokes the handler (request/reply through NATS: the host never replies itself);
- the workload is RUNNING only with its subscriptions live (a request right after start is answered);
- two replicas sharing a queue group (the default) handle each of N messages exactly once, counted;
- consumer_group "broadcast": every replica handles every message;
- a trap and a deadline overrun drop that message, are counted in /metrics, and the next message
  is handled (instance retired);
- admission_wait: with max_in_flight 1 and a spinning handler, waiting messages are dropped after
  admission_wait and counted in /metrics;
- after stop, the subscriptions are gone (NATS has no interest: no responders);
- a malformed subject, a bad consumer_group or an over-long admission_wait fail the start naming
  the key; the heartbeat advertises wasmcloud:messaging/handler as an export.
- a handler that only publishes runs inline on the NATS loop after INLINE_AFTER quick calls, and
  back on the handler threads after a slow one; one that calls consumer.request (messaging-ask-wat)
  never runs inline, and its requests are answered.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import nats
import nats.errors
import pytest

from wasmfleet.artifacts.fetching import ArtifactSettings
from wasmfleet.bus import messages, subjects
from wasmfleet.host.agent import Agent
from wasmfleet.host.policy import HostPolicy
from wasmfleet.host.settings import BusSettings, HostSettings, Identity, LifecycleSettings, ServingSettings
from wasmfleet.testing.nats import NatsServer, nats_server

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.components.build import build_component

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def handler() -> Path:
    return build_component("messaging-wat")


@pytest.fixture
def bus(tmp_path: Path) -> Iterator[NatsServer]:
    with nats_server(tmp_path / "nats") as server:
        yield server


def host_settings(bus: NatsServer, data: Path, workers: int) -> HostSettings:
    return HostSettings(
        identity=Identity(labels={"hostgroup": "default"}),
        bus=BusSettings(nats_url=bus.url, heartbeat_interval_s=0.3, reconnect_wait_s=0.1),
        serving=ServingSettings(http_host="127.0.0.1", http_port=0, workers=workers, metrics_host="127.0.0.1",
                                metrics_port=0),
        lifecycle=LifecycleSettings(drain_timeout_s=2, data_dir=data),
        artifacts=ArtifactSettings(cache_dir=data / "artifacts"),
        runtime_cache_dir=REPO / ".cache" / "runtime-test-components",
        policy=HostPolicy.allowing(REPO / ".cache"),
    )


@pytest.fixture
async def agent(tmp_path: Path, bus: NatsServer) -> AsyncIterator[Agent]:
    host = Agent(host_settings(bus, tmp_path / "host", workers=2))
    await host.start()
    try:
        yield host
    finally:
        await host.shutdown()


@pytest.fixture
async def agent2(tmp_path: Path, bus: NatsServer) -> AsyncIterator[Agent]:
    host = Agent(host_settings(bus, tmp_path / "host2", workers=1))
    await host.start()
    try:
        yield host
    finally:
        await host.shutdown()


@pytest.fixture
async def nc(bus: NatsServer) -> AsyncIterator[Any]:
    client = await nats.connect(bus.url)
    try:
        yield client
    finally:
        await client.close()


def messaging(config: dict[str, str]) -> messages.WitInterface:
    return messages.WitInterface(namespace="wasmcloud", package="messaging", interfaces=["handler", "consumer"],
                                 version="0.2.0", config=config)


async def start(nc: Any, agent: Agent, workload_id: str, image: Path, config: dict[str, str],
                local: dict[str, str] | None = None, name: str = "") -> dict:
    body = messages.encode(messages.WorkloadStartRequest(
        workload_id=workload_id,
        workload=messages.Workload(namespace="default", name=name or workload_id, wit_world=messages.WitWorld(
            components=[messages.Component(name="handler", image=f"file://{image}",
                                           local_resources=messages.LocalResources(config=local or {}))],
            host_interfaces=[messaging(config)],
        )),
    ))
    reply = await nc.request(subjects.workload_start(agent.host_id), body, timeout=120)
    status: dict = json.loads(reply.data)["workloadStatus"]
    return status


async def stop(nc: Any, agent: Agent, workload_id: str) -> None:
    body = messages.encode(messages.WorkloadStopRequest(workload_id=workload_id))
    await nc.request(subjects.workload_stop(agent.host_id), body, timeout=30)


async def scrape(agent: Agent) -> dict[tuple[str, str], float]:
    """wasmfleet_host_messages_total as {(workload, outcome): value}."""
    async with aiohttp.ClientSession() as session, \
            session.get(f"http://127.0.0.1:{agent.metrics_port}/metrics") as response:
        text = await response.text()
    found = {}
    for line in text.splitlines():
        if line.startswith("wasmfleet_host_messages_total{"):
            labels, value = line[len("wasmfleet_host_messages_total{"):].split("} ")
            parts = dict(p.split("=", 1) for p in labels.split(","))
            found[(parts["workload"].strip('"'), parts["outcome"].strip('"'))] = float(value)
    return found


async def eventually(check: Any, timeout: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            await check()
            return
        except AssertionError:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.2)


async def test_handler_replies_per_message_and_subscriptions_end_with_the_workload(
        agent: Agent, nc: Any, handler: Path) -> None:
    status = await start(nc, agent, "echo1", handler, {"subscriptions": "echo.in, echo.other"})
    assert status["workloadState"] == "WORKLOAD_STATE_RUNNING", status
    assert "handling messages on echo.in, echo.other" in status["message"]
    # Live as soon as RUNNING is answered: no retry loop here.
    for i in range(20):
        reply = await nc.request("echo.in", f"hello {i}".encode(), timeout=10)
        assert reply.data == f"HELLO {i}".encode()
    reply = await nc.request("echo.other", b"abc", timeout=10)
    assert reply.data == b"ABC"
    figures = await scrape(agent)
    assert figures[("echo1", "handled")] == 21
    assert figures[("echo1", "received")] == 21
    await stop(nc, agent, "echo1")
    with pytest.raises(nats.errors.NoRespondersError):
        await nc.request("echo.in", b"anyone?", timeout=2)


async def test_queue_group_shared_by_two_replicas_handles_each_message_once(
        agent: Agent, agent2: Agent, nc: Any, handler: Path) -> None:
    # Two replicas (distinct workloads, same consumer_group) on two hosts: 3 processes subscribe.
    config = {"subscriptions": "jobs.>", "consumer_group": "jobs-workers"}
    assert (await start(nc, agent, "q1", handler, config))["workloadState"] == "WORKLOAD_STATE_RUNNING"
    assert (await start(nc, agent2, "q2", handler, config))["workloadState"] == "WORKLOAD_STATE_RUNNING"
    seen: list[bytes] = []

    async def collect(msg: Any) -> None:
        seen.append(msg.data)

    await nc.subscribe("handled", cb=collect)
    total = 200
    for i in range(total):
        await nc.publish(f"jobs.{i % 7}", f"job-{i}".encode())
    await nc.flush()

    async def all_seen() -> None:
        assert len(seen) >= total

    await eventually(all_seen)
    await asyncio.sleep(0.5)  # a duplicate would arrive now
    assert sorted(seen) == sorted(f"job-{i}".encode() for i in range(total))
    a, b = await scrape(agent), await scrape(agent2)
    assert a[("q1", "handled")] + b[("q2", "handled")] == total


async def test_broadcast_delivers_every_message_to_every_replica(
        agent: Agent, agent2: Agent, nc: Any, handler: Path) -> None:
    config = {"subscriptions": "news", "consumer_group": "broadcast"}
    assert (await start(nc, agent, "b1", handler, config))["workloadState"] == "WORKLOAD_STATE_RUNNING"
    assert (await start(nc, agent2, "b2", handler, config))["workloadState"] == "WORKLOAD_STATE_RUNNING"
    seen: list[bytes] = []

    async def collect(msg: Any) -> None:
        seen.append(msg.data)

    await nc.subscribe("handled", cb=collect)
    for i in range(30):
        await nc.publish("news", f"n{i}".encode())
    await nc.flush()

    async def twice_each() -> None:
        assert len(seen) >= 60

    await eventually(twice_each)
    await asyncio.sleep(0.5)
    # Once per replica (host), not once per worker process of the two-worker host.
    assert sorted(seen) == sorted([f"n{i}".encode() for i in range(30)] * 2)


async def test_trap_and_deadline_drop_the_message_and_the_next_is_handled(
        agent: Agent, nc: Any, handler: Path) -> None:
    status = await start(nc, agent, "bad1", handler, {"subscriptions": "work", "handler_timeout": "0.5"})
    assert status["workloadState"] == "WORKLOAD_STATE_RUNNING", status
    await nc.publish("work", b"trap now")
    with pytest.raises(nats.errors.TimeoutError):
        await nc.request("work", b"spin forever", timeout=2)
    assert (await nc.request("work", b"after", timeout=10)).data == b"AFTER"

    async def counted() -> None:
        figures = await scrape(agent)
        assert figures.get(("bad1", "dropped_trap")) == 1, figures
        assert figures.get(("bad1", "dropped_deadline")) == 1, figures
        assert figures.get(("bad1", "handled")) == 1, figures

    await eventually(counted)


async def test_admission_wait_drops_and_counts(agent2: Agent, nc: Any, handler: Path) -> None:
    status = await start(nc, agent2, "slow1", handler, {
        "subscriptions": "slow", "max_in_flight": "1", "admission_wait": "200ms", "handler_timeout": "2"})
    assert status["workloadState"] == "WORKLOAD_STATE_RUNNING", status
    await nc.publish("slow", b"spin")  # holds the only slot for 2 s
    await asyncio.sleep(0.2)
    for i in range(3):
        await nc.publish("slow", f"wait {i}".encode())
    await nc.flush()

    async def dropped() -> None:
        figures = await scrape(agent2)
        assert figures.get(("slow1", "dropped_admission"), 0) >= 3, figures
        assert figures.get(("slow1", "dropped_deadline")) == 1, figures

    await eventually(dropped)
    assert (await nc.request("slow", b"free again", timeout=10)).data == b"FREE AGAIN"


@pytest.mark.parametrize(("config", "local", "expected"), [
    ({"subscriptions": "ok.subject, bad subject"}, {}, "subscriptions: 'bad subject' contains whitespace"),
    ({"subscriptions": "a..b"}, {}, "subscriptions: 'a..b' has an empty token"),
    ({"subscriptions": "a.>.b"}, {}, "'>' must be the last token"),
    ({"subscriptions": "ok"}, {"consumer_group": "two words"}, "localResources.config.consumer_group"),
    ({"subscriptions": "ok", "admission_wait": "601"}, {}, "admission_wait: '601' is more than 600 s"),
    ({"subscriptions": "ok", "max_in_flight": "lots"}, {}, "max_in_flight"),
    ({}, {}, "config.subscriptions is set neither"),
])
async def test_bad_config_fails_the_start_naming_the_key(
        agent2: Agent, nc: Any, handler: Path, config: dict[str, str], local: dict[str, str], expected: str) -> None:
    status = await start(nc, agent2, "badcfg", handler, config, local)
    assert status["workloadState"] == "WORKLOAD_STATE_ERROR", status
    assert expected in status["message"], status["message"]
    assert "retryable" not in status


async def test_local_config_wins_and_heartbeat_advertises_the_handler(agent2: Agent, nc: Any, handler: Path) -> None:
    status = await start(nc, agent2, "local1", handler, {"subscriptions": "from.entry"},
                         {"subscriptions": "from.local"})
    assert status["workloadState"] == "WORKLOAD_STATE_RUNNING", status
    assert (await nc.request("from.local", b"x", timeout=10)).data == b"X"
    with pytest.raises(nats.errors.NoRespondersError):
        await nc.request("from.entry", b"x", timeout=2)
    assert agent2.heartbeats is not None
    beat = agent2.heartbeats.build()
    exported = {(e.namespace, e.package, i) for e in beat.exports for i in e.interfaces}
    assert ("wasmcloud", "messaging", "handler") in exported


async def scrape_gauge(agent: Agent, name: str) -> float:
    async with aiohttp.ClientSession() as session, \
            session.get(f"http://127.0.0.1:{agent.metrics_port}/metrics") as response:
        text = await response.text()
    return next(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " "))


async def test_a_flood_stays_within_the_bounds_and_every_message_is_accounted_for(
        agent2: Agent, nc: Any, handler: Path) -> None:
    status = await start(nc, agent2, "flood1", handler, {"subscriptions": "flood", "max_in_flight": "2"})
    assert status["workloadState"] == "WORKLOAD_STATE_RUNNING", status
    sent = 20000
    for i in range(sent):
        await nc.publish("flood", b"x" * 64)
        if i % 2000 == 0:
            await nc.flush()
    await nc.flush()
    peak = 0.0

    async def accounted() -> None:
        nonlocal peak
        peak = max(peak, await scrape_gauge(agent2, "wasmfleet_host_messages_inflight"))
        figures = await scrape(agent2)
        overflow = await scrape_gauge(agent2, "wasmfleet_host_messages_dropped_overflow_total")
        done = sum(v for (w, k), v in figures.items() if w == "flood1" and k != "received")
        assert done + overflow >= sent, (figures, overflow)
        assert figures[("flood1", "received")] + overflow >= sent

    await eventually(accounted, timeout=120)
    assert peak <= 2


async def messaging_figures(agent: Agent, workload_id: str) -> dict[str, int]:
    """The dispatcher's counters of one workload on a one-process host (workers=1)."""
    assert agent.server is not None
    stats = await agent.server.stats_async()
    figures: dict[str, int] = stats["workers"][0]["messaging"]["workloads"][workload_id]
    return figures


async def test_a_quick_handler_runs_inline_until_a_call_is_slow(agent2: Agent, nc: Any, handler: Path) -> None:
    """messaging-wat only publishes: after INLINE_AFTER quick calls it runs inline on the NATS loop.
    A spin (interrupted at its deadline) sends it back to the handler threads, where it earns its
    way back with quick calls; every message is answered throughout."""
    from wasmfleet.host.runtime.messaging_dispatch import INLINE_AFTER

    status = await start(nc, agent2, "inl1", handler, {"subscriptions": "inl", "handler_timeout": "0.5"})
    assert status["workloadState"] == "WORKLOAD_STATE_RUNNING", status

    async def ask(n: int) -> None:
        for i in range(n):
            assert (await nc.request("inl", f"m{i}".encode(), timeout=10)).data == f"M{i}".encode()

    async def until_inline(before: int) -> int:
        """Asks until a message runs inline: after INLINE_AFTER quick calls, or a few more when a
        machine under load makes one call exceed QUICK_CPU_S (which starts the streak again)."""
        for _ in range(8):
            await ask(INLINE_AFTER)
            inline: int = (await messaging_figures(agent2, "inl1"))["inline"]
            if inline > before:
                return inline
        raise AssertionError(f"never inline again after {8 * INLINE_AFTER} quick calls")

    await ask(INLINE_AFTER)
    assert (await messaging_figures(agent2, "inl1"))["inline"] == 0  # still proving itself quick
    await until_inline(0)
    with pytest.raises(nats.errors.TimeoutError):
        await nc.request("inl", b"spin", timeout=2)  # inline (unless a slow call came just before)
    figures = await messaging_figures(agent2, "inl1")
    assert figures["dropped_deadline"] == 1, figures
    await ask(INLINE_AFTER)  # on the handler threads again: the spin reset the streak
    assert (await messaging_figures(agent2, "inl1"))["inline"] == figures["inline"]
    await until_inline(figures["inline"])


async def test_a_handler_that_makes_requests_runs_on_the_threads(agent2: Agent, nc: Any) -> None:
    """messaging-ask-wat calls consumer.request (it waits for a reply): it never runs inline on the
    NATS loop, where waiting for a reply that the same loop must deliver could never end."""
    async def reverse(msg: Any) -> None:
        await nc.publish(msg.reply, msg.data[::-1])

    backend = await nc.subscribe("ask.backend", cb=reverse)
    await nc.flush()
    status = await start(nc, agent2, "ask1", build_component("messaging-ask-wat"), {"subscriptions": "ask"})
    assert status["workloadState"] == "WORKLOAD_STATE_RUNNING", status
    count = 40  # more than INLINE_AFTER quick calls
    for i in range(count):
        assert (await nc.request("ask", f"q{i}".encode(), timeout=10)).data == f"q{i}".encode()[::-1]
    figures = await messaging_figures(agent2, "ask1")
    assert figures["handled"] == count and figures["inline"] == 0, figures
    await backend.unsubscribe()
