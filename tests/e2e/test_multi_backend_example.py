"""examples/multi-backend.yaml, applied unchanged with kubectl on a `wasmfleet up` fleet: NATS and Redis side by side.

The file names things that do not exist on this machine; the test provides each the way a user would:
- image ghcr.io/wasmcloud/components/http-keyvalue-counter-rust:0.1.0: there is no internet here, so the
  counter example (examples/counter, which opens `cache` and `sessions` like upstream's Rust counter) is
  pushed with `wasmfleet push` under that repository and tag to a real local docker-registry, and the
  hosts pull through `--registry-mirror ghcr.io=127.0.0.1:PORT` (given to `up`'s hosts through
  WASMFLEET_HOST_REGISTRY_MIRROR), the way a containerd mirror would serve it;
- url redis://redis:6379: a real redis-server on 127.0.0.1:6379 and a `127.0.0.1 redis` line in
  /etc/hosts (what cluster DNS provides on Kubernetes; the test removes the line afterwards). Port 6379
  must be free: the test fails saying so otherwise;
- bucket cache-kv: a named NATS entry never creates its bucket (upstream), so the test creates it as
  the data identity, as an operator would with `nats kv add cache-kv`;
- ConfigMap my-configmap and Secret my-secret: created with kubectl.

Checks: the Workload becomes Ready. Its wasi:http entry has `address` and no `host`, so it has no HTTP
route (wasmfleet routes by Host name; `address` is not implemented): the test then patches in
`host: multi.localhost` (the only change, made after the unchanged apply) and calls it through the
gateway 3 times: the JetStream KV bucket cache-kv (nats-py, data identity) and Redis (redis-py) both
hold hits = 3 as a big-endian u64. Then copies of the file with `backend: etcd` and without `url` end
in a Workload condition naming the entry and the key.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import nats
import pytest
import redis
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.e2e.test_fleet import BIN, REPO, WF, Fleet, _drain, until

from wasmfleet.testing.oci_registry_server import Registry, running_registry
from wasmfleet.testing.redis_server import RedisServer

pytestmark = pytest.mark.timeout(300)

MANIFEST = REPO / "examples" / "multi-backend.yaml"
COUNTER = REPO / "examples" / "counter" / "counter.wasm"
HOSTS_FILE = Path("/etc/hosts")
HOSTS_LINE = "127.0.0.1 redis  # wasmfleet test_multi_backend_example\n"


@pytest.fixture
def redis_at_6379(tmp_path: Path) -> Iterator[RedisServer]:
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", 6379)) == 0:
            raise AssertionError("port 6379 is taken: the example names redis://redis:6379, stop what listens there")
    server = RedisServer(tmp_path / "redis", port=6379)
    server.start()
    original = HOSTS_FILE.read_text()
    HOSTS_FILE.write_text(original + ("" if original.endswith("\n") else "\n") + HOSTS_LINE)
    try:
        yield server
    finally:
        # Restore only our line: other tests may have changed the file meanwhile.
        HOSTS_FILE.write_text("".join(line for line in HOSTS_FILE.read_text().splitlines(keepends=True)
                                      if line != HOSTS_LINE))
        server.stop()


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    with running_registry(tmp_path / "registry") as reg:
        yield reg


@pytest.fixture
async def mirrored_fleet(tmp_path: Path, registry: Registry) -> AsyncIterator[Fleet]:
    data = tmp_path / "fleet"
    env = {**os.environ, "WASMFLEET_HOST_REGISTRY_MIRROR": f"ghcr.io={registry.host}"}
    proc = await asyncio.create_subprocess_exec(
        *WF, "up", "--data-dir", str(data), "--host-groups", "default", "--hosts-per-group", "1",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=env,
    )
    output: list[str] = []

    async def read_until_up() -> None:
        assert proc.stdout is not None
        while True:
            line = (await proc.stdout.readline()).decode()
            if not line:
                raise AssertionError("wasmfleet up exited:\n" + "".join(output))
            output.append(line)
            if "Ctrl-C stops everything" in line:
                return

    await asyncio.wait_for(read_until_up(), 120)
    drain = asyncio.create_task(_drain(proc, output))
    gateway = "http://127.0.0.1:" + str(json.loads((data / "ports.json").read_text())["gateway"])
    fleet = Fleet(data, proc, gateway, output)
    try:
        yield fleet
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        drain.cancel()
        for info in fleet.children().values():
            if info["pid"]:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(info["pid"], signal.SIGKILL)


def conditions(workload: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in workload.get("status", {}).get("conditions", [])}


async def test_multi_backend_example_as_written(mirrored_fleet: Fleet, registry: Registry,
                                                redis_at_6379: RedisServer, tmp_path: Path) -> None:
    fleet = mirrored_fleet
    kubectl = str(BIN / "kubectl")
    await fleet.run(*WF, "push", f"{registry.host}/wasmcloud/components/http-keyvalue-counter-rust:0.1.0",
                    str(COUNTER))
    ports = json.loads((fleet.data / "ports.json").read_text())
    password = json.loads((fleet.data / "nats" / "credentials.json").read_text())["data"]
    nc = await nats.connect(f"nats://127.0.0.1:{ports['nats']}", user="data", password=password)
    try:
        await nc.jetstream().create_key_value(bucket="cache-kv")
        await fleet.run(kubectl, "create", "configmap", "my-configmap", "--from-literal=greeting=hello")
        await fleet.run(kubectl, "create", "secret", "generic", "my-secret", "--from-literal=token=s3cret")
        await fleet.run(kubectl, "apply", "-f", str(MANIFEST))

        async def ready() -> bool:
            workload = await fleet.kubectl_json("get", "workload", "multi-backend")
            return conditions(workload).get("Ready", {}).get("status") == "True"

        await until(ready, 120, "multi-backend Ready (image through the mirror, both backends accepted)")

        workload = await fleet.kubectl_json("get", "workload", "multi-backend")
        entries = workload["spec"]["hostInterfaces"]
        http = next(i for i, e in enumerate(entries) if e["package"] == "http")
        patch = [{"op": "add", "path": f"/spec/hostInterfaces/{http}/config/host", "value": "multi.localhost"}]
        await fleet.run(kubectl, "patch", "workload", "multi-backend", "--type", "json", "-p", json.dumps(patch))

        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
            async def counted() -> str:
                try:
                    async with session.get(fleet.gateway + "/", headers={"Host": "multi.localhost"}) as resp:
                        return await resp.text() if resp.status == 200 else ""
                except aiohttp.ClientError:
                    return ""

            assert await until(counted, 90, "the patched workload serving multi.localhost") == "cache=1 sessions=1\n"
            assert await counted() == "cache=2 sessions=2\n"
            assert await counted() == "cache=3 sessions=3\n"

        entry = await (await nc.jetstream().key_value("cache-kv")).get("hits")
        assert entry.value == (3).to_bytes(8, "big")
        client = redis.Redis(host="127.0.0.1", port=6379)
        assert client.get("hits") == (3).to_bytes(8, "big")
        client.close()

        example = yaml.safe_load(MANIFEST.read_text())
        for name, change, expected in (
            ("bad-backend", {"backend": "etcd"}, "hostInterfaces entry wasi:keyvalue (name sessions): "
                                                 "config.backend: unknown value 'etcd'"),
            ("no-url", {"url": None}, "hostInterfaces entry wasi:keyvalue (name sessions): "
                                      "config.url: required by backend redis"),
        ):
            bad = json.loads(json.dumps(example))
            bad["metadata"]["name"] = name
            sessions = next(e for e in bad["spec"]["hostInterfaces"] if e.get("name") == "sessions")
            for key, value in change.items():
                if value is None:
                    sessions["config"].pop(key)
                else:
                    sessions["config"][key] = value
            path = tmp_path / f"{name}.yaml"
            path.write_text(yaml.safe_dump(bad))
            await fleet.run(kubectl, "apply", "-f", str(path))

            async def refused(name: str = name, expected: str = expected) -> str:
                workload = await fleet.kubectl_json("get", "workload", name)
                text = " ".join(c.get("message", "") for c in conditions(workload).values())
                return text if expected in text else ""

            await until(refused, 90, f"{name} refused with {expected!r}")
    finally:
        await nc.close()
