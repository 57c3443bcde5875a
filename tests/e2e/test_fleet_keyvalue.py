"""wasi:keyvalue on a real `wasmfleet up` fleet: hosts keep workloads' data as the data-plane identity.

`wasmfleet up --apply examples/counter/deployment.yaml` (the example README's one command; NATS with
authorization, 2 hosts in group default) and then, through the gateway:
- the counter answers cache=1 sessions=1, then 2, 3 ...: both replicas increment the same JetStream KV
  buckets on the host's default (NATS) backend, which the hosts reach with up's `data` login (their
  own control login may use JetStream only to read the artifacts bucket: bus/permissions.py);
- the buckets `cache` and `sessions` hold the count as a big-endian u64, read with nats-py as the
  data identity from DATA_DIR/nats/credentials.json.
"""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import nats
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.e2e.test_fleet import REPO, Fleet, running_up, until

pytestmark = pytest.mark.timeout(240)

COUNTER = REPO / "examples" / "counter" / "deployment.yaml"


@pytest.fixture
async def counter_fleet(tmp_path: Path) -> AsyncIterator[Fleet]:
    async with running_up(tmp_path / "fleet", "--host-groups", "default", "--hosts-per-group", "2",
                          "--apply", str(COUNTER), graceful=True) as fleet:
        yield fleet


async def _reported_serving(fleet: Fleet) -> bool:
    return any("counter.localhost is serving" in line for line in fleet.output)


async def test_counter_keeps_its_count_in_nats_as_the_data_identity(counter_fleet: Fleet) -> None:
    fleet = counter_fleet
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        async def get() -> tuple[int, str]:
            try:
                async with session.get(fleet.gateway + "/", headers={"Host": "counter.localhost"}) as resp:
                    return resp.status, await resp.text()
            except aiohttp.ClientError as exc:
                return 0, str(exc)

        async def first() -> str:
            status, body = await get()
            return body if status == 200 else ""

        # `up --apply` itself requests the counter until one answer comes (to report that it
        # serves): wait for that report, so no request of up's runs alongside ours (two requests
        # at once interleave their two increments, and an answer may read cache=3 sessions=2).
        await until(lambda: _reported_serving(fleet), 90, "up reporting the counter serving")
        body = await until(first, 30, "the counter serving through the gateway")
        start = int(body.split()[0].removeprefix("cache="))
        assert start in (1, 2) and body == f"cache={start} sessions={start}\n", body
        for n in range(start + 1, start + 7):
            async with session.get(fleet.gateway + "/", headers={"Host": "counter.localhost"}) as resp:
                assert resp.status == 200
                assert await resp.text() == f"cache={n} sessions={n}\n"

    password = json.loads((fleet.data / "nats" / "credentials.json").read_text())["data"]
    ports = json.loads((fleet.data / "ports.json").read_text())
    nc = await nats.connect(f"nats://127.0.0.1:{ports['nats']}", user="data", password=password)
    try:
        js = nc.jetstream()
        for bucket in ("cache", "sessions"):
            entry = await (await js.key_value(bucket)).get("hits")
            assert entry.value == (start + 6).to_bytes(8, "big"), bucket
    finally:
        await nc.close()
    workloads: Any = await fleet.kubectl_json("get", "workloads")
    assert len(workloads["items"]) == 2
