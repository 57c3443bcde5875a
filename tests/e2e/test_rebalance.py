"""Rebalancing after a failover, end to end: real processes, the gateway, load throughout.

`wasmfleet up` runs nats-server, the API server, the operator, 3 hosts and the gateway. One host is
killed with SIGKILL; `up` restarts it under the same host ID (its NATS identity), but only once the
operator has judged the old process dead (docs/up.md). The component is examples/hello.

Checks:
- 6 replicas spread 2/2/2 over the 3 hosts;
- kill -9 of one host: its replicas serve on the 2 others (3/3), requests fail only in the first
  5 s after the kill (the host's expiry);
- the host comes back (restarted by `up`): the replicas spread 2/2/2 again, and not one request
  fails from the moment the survivors hold every replica until the spread settles (a replacement replica
  is Ready before the one it replaces stops, and the gateway routes only to Ready replicas).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import yaml
from test_fleet import EXAMPLE, WF, Fleet, hit, ready_workloads, running_up, until

pytestmark = pytest.mark.timeout(240)

REPLICAS = 6


def nats_url(fleet: Fleet) -> str:
    ports = json.loads((fleet.data / "ports.json").read_text())
    return f"nats://127.0.0.1:{ports['nats']}"


async def spread(fleet: Fleet) -> Counter[str]:
    return Counter(w["status"]["hostId"] for w in await ready_workloads(fleet))


@pytest.fixture
async def fleet(tmp_path: Path) -> AsyncIterator[Fleet]:
    """`wasmfleet up` with 3 hosts in one group."""
    async with running_up(tmp_path / "fleet", "--host-groups", "default", "--hosts-per-group", "3",
                          graceful=True) as f:
        yield f


async def test_replicas_spread_again_when_a_killed_host_returns_without_a_failed_request(
    fleet: Fleet, tmp_path: Path
) -> None:
    """One of `up`'s hosts is killed (-9); `up` restarts it under the same host ID (its NATS identity)
    once the operator has judged it dead, and the replicas piled on the survivors spread again."""
    manifest = yaml.safe_load(EXAMPLE.read_text())
    manifest["spec"]["replicas"] = REPLICAS
    manifest["spec"]["template"]["spec"]["components"][0]["image"] = f"file://{EXAMPLE.parent / 'hello.wasm'}"
    path = tmp_path / "hello-6.yaml"
    path.write_text(yaml.safe_dump(manifest))
    await fleet.run(*WF, "apply", "-f", str(path))

    async def even() -> Counter[str] | None:
        counts = await spread(fleet)
        return counts if sorted(counts.values()) == [2, 2, 2] else None

    before = await until(even, 60, "6 Ready replicas spread 2/2/2")
    children = json.loads((fleet.data / "children.json").read_text())
    victim_pid = next(c["pid"] for name, c in children.items() if name.startswith("host "))

    results: list[tuple[float, int]] = []
    stop = asyncio.Event()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:

        async def client() -> None:
            while not stop.is_set():
                code, _ = await hit(session, fleet.gateway)
                results.append((time.monotonic(), code))

        clients = [asyncio.create_task(client()) for _ in range(4)]
        await asyncio.sleep(1.0)
        os.kill(victim_pid, signal.SIGKILL)
        killed_at = time.monotonic()

        async def piled() -> Counter[str] | None:
            counts = await spread(fleet)
            return counts if sum(counts.values()) == REPLICAS and len(counts) == 2 else None

        during = await until(piled, 30, "replicas Ready on the 2 surviving hosts")
        assert sorted(during.values()) == [3, 3], during
        victim_id = next(iter(set(before) - set(during)))
        back_at = time.monotonic()  # `up` restarts the host once the operator has judged it dead

        async def spread_again() -> Counter[str] | None:
            counts = await even()
            if counts is None or victim_id not in counts:
                return None
            all_wl = (await fleet.kubectl_json("get", "workloads"))["items"]
            return counts if len(all_wl) == REPLICAS else None

        after = await until(spread_again, 90, "replicas spread over 3 hosts again")
        settled_at = time.monotonic()
        await asyncio.sleep(1.0)
        stop.set()
        await asyncio.gather(*clients)

    failover_failures = [(round(t - killed_at, 2), c) for t, c in results if c != 200 and t < back_at]
    rebalance = [c for t, c in results if t >= back_at]
    print(f"\nfailover: {len(failover_failures)} failed requests {failover_failures[:5]}; "
          f"rebalance {settled_at - back_at:.1f} s: {dict(Counter(rebalance))}; spread {sorted(after.values())}")
    assert all(t <= 5.0 for t, _ in failover_failures), f"requests failing after 5 s: {failover_failures}"
    assert rebalance.count(200) > 20
    assert set(rebalance) == {200}, f"requests failed while rebalancing: {dict(Counter(rebalance))}"

