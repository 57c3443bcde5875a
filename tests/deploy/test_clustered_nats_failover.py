"""The clustered shape of the chart (nats.replicas 3), run for real on loopback: kill -9 one NATS
server under load through the gateway, count what fails and what is lost.

Three nats-servers form a JetStream cluster configured from the chart's rendered nats.conf (its
`jetstream` block, its `cluster` block with routes over TLS between the servers, the generated
server certificate) with the pod's paths and the cluster DNS names moved to loopback. Client TLS and
the per-role accounts are left out of THIS test's config, which is about failover: the hosts reach
JetStream on their own URL without a data-plane identity here (the chart's hosts log in to the DATA
account with WASMFLEET_HOST_DATA_NATS_TLS_*: tests/deploy/test_chart_configuration_runs.py runs a
keyvalue workload that way, and tests/deploy/test_chart_security.py checks the authorization). The
servers advertise their loopback client addresses (the chart sets no_advertise, since pod IPs are
not in the certificate; its clients get every server's name instead).

Running against it, as real processes: the embedded API server, the operator (given all three URLs,
comma-separated), two hosts each given only the URL of its own server (host A: node 1, host B:
node 2; they learn the others from the cluster), the gateway, and a 2-replica WorkloadDeployment of
tests/components/keyvalue-py writing to a JetStream KV bucket with 3 replicas.

Checks:
- the cluster forms (JetStream healthy on all three) and the bucket has 3 replicas;
- the workload's 2 replicas are Ready on the 2 hosts and answer through the gateway;
- under steady load (idempotent reads of a seeded key and writes of fresh keys, through the
  gateway), node 1 (host A's server; made the bucket's stream leader first when a step-down gets
  it there) is killed with SIGKILL;
- every write the guest acknowledged (HTTP 200 with {"ok": ...}) is readable with its value from the
  surviving servers afterwards: lost acknowledged writes must be 0 (JetStream acknowledges after a
  quorum of replicas stored it);
- no request fails: reads and writes are idempotent, and a keyvalue operation in flight on the
  killed server's connection, or waiting for the new stream leader, is retried by the host on its
  reconnected connection within the request's deadline (host/plugins/keyvalue_nats.py; gets and
  sets on the lane of host/plugins/nats_blocking.py, which reconnects to a server the cluster
  advertised), so failed requests must be 0; the failures (if any, with when they started and how long they took), the
  stream leader elections and host A's reconnection time are printed;
- host A's keyvalue connection was on the killed server when it died (warm-up requests reach both
  replicas first), so the in-flight case is exercised, not only new requests after the kill.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import nats
import pytest
import yaml
from chart_rendering import REPO, by_kind, process, render, write_secret

from wasmfleet.testing.apiserver import running_apiserver
from wasmfleet.testing.nats import free_port, nats_server_binary

sys.path.insert(0, str(REPO))
from tests.components.build import build_component

pytestmark = pytest.mark.timeout(150)

WF = [sys.executable, "-m", "wasmfleet"]
KUBECTL = str(Path(sys.executable).parent / "kubectl")
HOSTNAME = "kv.localhost"
BUCKET = "fleetkv"
LOAD_BEFORE_KILL_S = 3.0
LOAD_AFTER_KILL_S = 16.0
WARM_UP_REQUESTS = 20
"""Reads through the gateway before the kill, so both replicas' hosts have opened their keyvalue
connection (the gateway spreads requests over the replicas)."""
CONCURRENCY = 6


@dataclass
class Node:
    index: int
    client: int
    route: int
    monitor: int

    @property
    def name(self) -> str:
        return f"wf-wasmfleet-nats-{self.index}"

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.client}"


def strip_block(conf: str, name: str) -> str:
    """The configuration without its top-level `name { ... }` block."""
    lines, out, depth = conf.splitlines(), [], 0
    for line in lines:
        if depth == 0 and line.rstrip() == f"{name} {{":
            depth = 1
            continue
        if depth:
            depth += line.count("{") - line.count("}")
            continue
        out.append(line)
    return "\n".join(out) + "\n"


def node_conf(chart_conf: str, node: Node, nodes: list[Node], tmp: Path) -> str:
    conf = strip_block(strip_block(chart_conf, "tls"), "accounts")
    routes = "\n".join(f"    nats://127.0.0.1:{n.route}" for n in nodes)
    conf = re.sub(r"routes: \[\n.*?\n  \]", lambda _: f"routes: [\n{routes}\n  ]", conf, flags=re.S)
    conf = conf.replace("  no_advertise: true\n", "")
    return (conf.replace("server_name: $POD_NAME", f"server_name: {node.name}")
            .replace("/etc/nats/tls/", f"{tmp}/nats-tls/")
            .replace("store_dir: /data", f"store_dir: {tmp}/js-{node.index}")
            .replace("/var/run/nats/nats.pid", f"{tmp}/nats-{node.index}.pid")
            .replace("port: 4222", f"port: {node.client}\nhost: 127.0.0.1")
            .replace("http_port: 8222", f"http: 127.0.0.1:{node.monitor}")
            .replace("  port: 6222", f"  listen: 127.0.0.1:{node.route}"))


def since(wall: float, clock: str) -> float:
    """Seconds from `wall` (time.time()) to a log line's local time of day HH:MM:SS.ffffff."""
    hours, minutes, seconds = clock.split(":")
    start = time.localtime(wall)
    of_day = int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    return of_day - (start.tm_hour * 3600 + start.tm_min * 60 + start.tm_sec + wall % 1)


def monitor(node: Node, path: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{node.monitor}{path}", timeout=2) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, None
    except (OSError, ValueError):
        return 0, None


def wait_for(check: Any, timeout: float, what: str, logs: Path) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.2)
    tails = "".join(f"--- {p.name}\n{p.read_text()[-3000:]}\n" for p in sorted(logs.glob("*.log")))
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}\n{tails}")


@dataclass
class Load:
    reads_ok: int = 0
    reads_failed: int = 0
    writes_failed: int = 0
    acked: dict[str, str] = field(default_factory=dict)
    failures: list[tuple[float, float, str]] = field(default_factory=list)
    """(started, seconds since the load began; how long it took; what came back)."""


async def drive_load(gateway: str, kill: Any, load: Load) -> float:
    """Reads and writes through the gateway; calls kill() after LOAD_BEFORE_KILL_S; returns when."""
    start = time.monotonic()
    stop_at = start + LOAD_BEFORE_KILL_S + LOAD_AFTER_KILL_S
    counter = iter(range(10**9))

    async def call(session: aiohttp.ClientSession, path: str) -> tuple[bool, str]:
        try:
            async with session.get(gateway + path, headers={"Host": HOSTNAME}) as resp:
                text = await resp.text()
                if resp.status != 200:
                    return False, f"HTTP {resp.status} {text[:120]}"
                answer = json.loads(text)
                return "ok" in answer, text[:160]
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            return False, f"{type(exc).__name__}: {exc}"

    async def worker(session: aiohttp.ClientSession, n: int) -> None:
        while time.monotonic() < stop_at:
            began = time.monotonic()
            if n % 2:
                ok, detail = await call(session, f"/get?id={BUCKET}&key=seed")
                ok = ok and '"ok": "' + b"seeded".hex() + '"' in detail
                if ok:
                    load.reads_ok += 1
                else:
                    load.reads_failed += 1
            else:
                i = next(counter)
                key, value = f"w-{i:06}", f"v{i}"
                ok, detail = await call(session, f"/set?id={BUCKET}&key={key}&value={value}")
                if ok:
                    load.acked[key] = value
                else:
                    load.writes_failed += 1
            if not ok:
                load.failures.append((round(began - start, 2), round(time.monotonic() - began, 2), detail))

    timeout = aiohttp.ClientTimeout(total=20)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        tasks = [asyncio.create_task(worker(session, n)) for n in range(CONCURRENCY)]
        await asyncio.sleep(LOAD_BEFORE_KILL_S)
        killed_at = time.monotonic() - start
        kill()
        await asyncio.gather(*tasks)
    return killed_at


async def read_back(urls: list[str], acked: dict[str, str]) -> list[str]:
    """Keys whose acknowledged value the surviving servers do not return."""
    nc = await nats.connect(servers=urls, connect_timeout=2, max_reconnect_attempts=5)
    try:
        kv = await nc.jetstream(timeout=5).key_value(BUCKET)
        lost = []
        for key, value in acked.items():
            entry = None
            for _ in range(100):  # a stream without a leader yet answers 503: ask again
                try:
                    entry = await kv.get(key)
                    break
                except nats.js.errors.KeyNotFoundError:
                    break
                except nats.js.errors.ServiceUnavailableError:
                    await asyncio.sleep(0.2)
            else:
                raise AssertionError(f"the bucket stayed unavailable while reading back {key}")
            if entry is None:
                lost.append(key)
                continue
            if entry.value != value.encode():
                lost.append(key)
        return lost
    finally:
        await nc.close()


async def prepare_bucket(urls: list[str]) -> None:
    nc = await nats.connect(servers=urls, connect_timeout=2)
    try:
        js = nc.jetstream(timeout=10)
        kv = await js.create_key_value(bucket=BUCKET, replicas=3)
        for _ in range(50):  # a new R3 stream may answer no one until its leader is elected
            try:
                await kv.put("seed", b"seeded")
                break
            except nats.js.errors.NoStreamResponseError:
                await asyncio.sleep(0.2)
        else:
            raise AssertionError("the new bucket never accepted a write")
        info = await js.stream_info(f"KV_{BUCKET}")
        assert info.config.num_replicas == 3, info.config
    finally:
        await nc.close()


async def stream_leader(urls: list[str]) -> str:
    nc = await nats.connect(servers=urls, connect_timeout=2)
    try:
        info = await nc.jetstream(timeout=5).stream_info(f"KV_{BUCKET}")
        return str(info.cluster.leader if info.cluster else "")
    finally:
        await nc.close()


async def move_leader_to(urls: list[str], target: str) -> str:
    """Step the bucket's stream leader down until `target` leads (best effort, a few tries)."""
    leader = await stream_leader(urls)
    for _ in range(6):
        if leader == target:
            break
        nc = await nats.connect(servers=urls, connect_timeout=2)
        try:
            with contextlib.suppress(Exception):
                await nc.request(f"$JS.API.STREAM.LEADER.STEPDOWN.KV_{BUCKET}", b"", timeout=5)
        finally:
            await nc.close()
        await asyncio.sleep(1.0)
        leader = await stream_leader(urls)
    return leader


def placement(nodes: list[Node]) -> dict[str, list[str]]:
    """Server name -> names of the wasmfleet clients connected to it (from /connz)."""
    found: dict[str, list[str]] = {}
    for node in nodes:
        _, connz = monitor(node, "/connz")
        found[node.name] = sorted(c.get("name", "") or "(unnamed: keyvalue)" for c in (connz or {}).get(
            "connections", []))
    return found


@contextlib.contextmanager
def nats_cluster(tmp: Path) -> Iterator[tuple[list[Node], dict[int, Any]]]:
    objects = render({"nats": {"replicas": 3}})
    write_secret(by_kind(objects, "Secret")["wf-wasmfleet-nats-tls"], tmp / "nats-tls")
    chart_conf = by_kind(objects, "ConfigMap")["wf-wasmfleet-nats"]["data"]["nats.conf"]
    nodes = [Node(i, free_port(), free_port(), free_port()) for i in range(3)]
    with contextlib.ExitStack() as stack:
        procs = {}
        for node in nodes:
            path = tmp / f"nats-{node.index}.conf"
            path.write_text(node_conf(chart_conf, node, nodes, tmp))
            procs[node.index] = stack.enter_context(
                process([str(nats_server_binary()), "-c", str(path)], {}, tmp / f"nats-{node.index}.log"))
        yield nodes, procs


def test_killing_a_nats_node_under_load_loses_no_acknowledged_write(tmp_path: Path) -> None:
    guest = build_component("keyvalue-py")
    logs = tmp_path
    with nats_cluster(tmp_path) as (nodes, procs):
        all_urls = [n.url for n in nodes]
        wait_for(lambda: all(monitor(n, "/healthz?js-enabled-only=true")[0] == 200 for n in nodes), 30,
                 "a healthy JetStream cluster", logs)
        wait_for(lambda: all(monitor(n, "/jsz")[1] and (monitor(n, "/jsz")[1].get("meta_cluster") or {}).get(
            "leader") for n in nodes), 30, "a JetStream meta leader", logs)
        asyncio.run(prepare_bucket(all_urls))

        with running_apiserver(tmp_path / "api") as kubeconfig, contextlib.ExitStack() as stack:
            kenv = {**os.environ, "KUBECONFIG": str(kubeconfig)}
            gateway_port = free_port()
            stack.enter_context(process(
                [*WF, "operator", "--kubeconfig", str(kubeconfig), "--nats", ",".join(all_urls),
                 "--listen", "127.0.0.1:0", "--host-expiry", "15"], {}, logs / "operator.log"))
            for label, node in (("a", nodes[1]), ("b", nodes[2])):
                stack.enter_context(process(
                    [*WF, "host", "--nats", node.url, "--name", f"host-{label}", "--host-id", f"host-{label}",
                     "--hostname", "127.0.0.1", "--http-addr", "127.0.0.1:0", "--heartbeat-interval", "5",
                     "--allow-file-root", str(guest.parent), "--data-dir", str(tmp_path / f"host-{label}")],
                    {}, logs / f"host-{label}.log"))
            stack.enter_context(process(
                [*WF, "gateway", "--kubeconfig", str(kubeconfig), "--port", str(gateway_port)], {},
                logs / "gateway.log"))
            gateway = f"http://127.0.0.1:{gateway_port}"

            manifest = {
                "apiVersion": "runtime.wasmcloud.dev/v1alpha1", "kind": "WorkloadDeployment",
                "metadata": {"name": "kv", "namespace": "default"},
                "spec": {"replicas": 2, "template": {"spec": {
                    "hostSelector": {"hostgroup": "default"},
                    "components": [{"name": "kv", "image": f"file://{guest}"}],
                    "hostInterfaces": [
                        {"namespace": "wasi", "package": "http", "interfaces": ["incoming-handler"],
                         "config": {"host": HOSTNAME}},
                        {"namespace": "wasi", "package": "keyvalue", "version": "0.2.0-draft",
                         "interfaces": ["store", "atomics", "batch"]},
                    ]}}},
            }
            (tmp_path / "kv.yaml").write_text(yaml.safe_dump(manifest))
            wait_for(lambda: subprocess.run([KUBECTL, "get", "hosts", "-o", "name"], env=kenv, capture_output=True,
                                            text=True).stdout.count("host") >= 2, 40, "two Hosts", logs)
            applied = subprocess.run([KUBECTL, "apply", "-f", str(tmp_path / "kv.yaml")], env=kenv,
                                     capture_output=True, text=True)
            assert applied.returncode == 0, applied.stderr

            def ready_hosts() -> set[str]:
                out = subprocess.run([KUBECTL, "get", "workloads", "-o", "json"], env=kenv, capture_output=True,
                                     text=True).stdout
                items = json.loads(out or '{"items": []}')["items"]
                return {w["status"].get("hostId", "") for w in items
                        if any(c["type"] == "Ready" and c["status"] == "True"
                               for c in w.get("status", {}).get("conditions", []))}

            def two_ready() -> set[str] | None:
                found = ready_hosts()
                return found if len(found) == 2 else None

            hosts = wait_for(two_ready, 60, "2 Ready replicas on 2 hosts", logs)
            assert hosts == {"host-a", "host-b"}, hosts

            def seed_served() -> bool:
                request = urllib.request.Request(f"{gateway}/get?id={BUCKET}&key=seed", headers={"Host": HOSTNAME})
                try:
                    with urllib.request.urlopen(request, timeout=5) as resp:
                        return b"seeded".hex() in resp.read().decode()
                except OSError:
                    return False

            wait_for(seed_served, 30, "the seed key through the gateway", logs)
            for _ in range(WARM_UP_REQUESTS):
                assert seed_served(), "a warm-up read failed"
            before = placement(nodes)
            leader = asyncio.run(move_leader_to(all_urls, nodes[1].name))

            load = Load()
            victim = procs[1]
            killed_wall = 0.0

            def kill() -> None:
                nonlocal killed_wall
                killed_wall = time.time()
                os.kill(victim.pid, signal.SIGKILL)

            killed_at = asyncio.run(drive_load(gateway, kill, load))
            survivors = [nodes[0].url, nodes[2].url]
            lost = asyncio.run(read_back(survivors, load.acked))
            after = placement([nodes[0], nodes[2]])

            total_reads = load.reads_ok + load.reads_failed
            # Seconds after the kill, from the servers' and host A's logs (both in local time).
            elections = sorted(round(since(killed_wall, line.split()[2]), 1) for i in (0, 2)
                               for line in (tmp_path / f"nats-{i}.log").read_text().splitlines()
                               if "new stream leader" in line and since(killed_wall, line.split()[2]) > 0)
            reconnects = [round(since(killed_wall, line[11:23].replace(",", ".")), 1)
                          for line in (logs / "host-a.log").read_text().splitlines() if "reconnected to NATS" in line]
            report = (
                f"\nclustered NATS failover: killed {nodes[1].name} (SIGKILL) at {killed_at:.1f} s of load "
                f"({time.strftime('%H:%M:%S', time.localtime(killed_wall))}); stream leader before: {leader}; "
                f"new stream leader elected after {elections[:1]} s; host A reconnected after {reconnects} s\n"
                f"  clients before: {before}\n  clients after: {after}\n"
                f"  reads (idempotent GET of a seeded key): {total_reads}, failed {load.reads_failed}\n"
                f"  writes: acknowledged {len(load.acked)}, failed (not acknowledged) {load.writes_failed}\n"
                f"  lost acknowledged writes: {len(lost)} {lost[:10]}\n"
                f"  failures (started s, took s, detail): {load.failures[:12]}\n"
            )
            print(report)
            # The hosts were on different servers, host A on the one killed.
            assert "wasmfleet-host host-a" in before[nodes[1].name], report
            assert "wasmfleet-host host-b" in before[nodes[2].name], report
            assert len(load.acked) > 50 and total_reads > 50, report  # the load was real
            # Host A's keyvalue connections were on the killed server: nats-py's (unnamed, for
            # opening buckets) and the lane its wasm threads send gets and sets on.
            assert "(unnamed: keyvalue)" in before[nodes[1].name], report
            assert "wasmfleet-host host-a keyvalue" in before[nodes[1].name], report
            # The lane learnt the other servers from the cluster (host A was given only node 1's URL).
            assert any("wasmfleet-host host-a keyvalue" in names for names in after.values()), report
            assert lost == [], report
            assert load.reads_failed == 0 and load.writes_failed == 0, report
            # The control plane followed: the operator and host A are connected to a surviving server.
            names = " ".join(" ".join(v) for v in after.values())
            assert "wasmfleet-operator" in names and "host-a" in names, report
