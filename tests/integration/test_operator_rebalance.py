"""Rebalancing replicas piled up after a failover (real embedded API server, real nats-server).

Hosts are `FakeHost` protocol responders on the real NATS (see operator_harness.py): the point is the
operator's decisions, read from the Workload objects and from what each host runs.

Checks:
- After a failover left a ReplicaSet's replicas on fewer hosts than could take them, a host joining
  makes them spread out again (every host within one replica of the others).
- While replicas move, the number of Ready replicas never drops below spec.replicas (a replacement
  is started and Ready before the replica it replaces is deleted), and no host ever runs a replica
  that is not placed there once things settle.
- With rebalancing switched off (settings.Reconciling.rebalance=False) nothing moves.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter
from pathlib import Path
from typing import Any

import operator_harness as h
import pytest
from test_operator_placement import NS, cond, deployment, ready_workloads, workloads_of

from wasmfleet.kube import client, rest_paths
from wasmfleet.testing import nats as nats_helper

pytestmark = pytest.mark.timeout(120)


async def spread(kube: client.KubeClient, wd: str) -> Counter[str]:
    return Counter(str((w.get("status") or {}).get("hostId")) for w in await workloads_of(kube, wd))


async def pile_then_join(tmp_path: Path, rebalance: bool) -> tuple[Counter[str], int, list[h.FakeHost]]:
    """3 hosts, 6 replicas; one host killed (its 2 replicas move to the other two), then a new host
    joins. Returns the final spread (host ID -> replicas), the fewest Ready replicas seen meanwhile,
    and the live hosts."""
    with nats_helper.running_nats_server(tmp_path / "nats") as url, h.apiserver(tmp_path / "api") as kubeconfig:
        kube = await h.kube_client(kubeconfig)
        hosts = [await h.FakeHost(url, f"even-seal-000{i}", interval_s=0.5).start() for i in range(3)]
        cfg = h.operator_settings(kubeconfig, url, expiry_s=1.5)
        cfg = dataclasses.replace(cfg, reconciling=dataclasses.replace(cfg.reconciling, rebalance=rebalance))
        async with h.running_operator(cfg):
            await kube.create(rest_paths.DEPLOYMENTS, NS, deployment("even", replicas=6))
            await h.eventually(lambda: ready_workloads(kube, "even", 6), what="6 ready")
            assert sorted((await spread(kube, "even")).values()) == [2, 2, 2]
            await hosts[0].kill()

            async def piled() -> Any:
                ready = await ready_workloads(kube, "even", 6)
                return ready and all(w["status"]["hostId"] != hosts[0].host_id for w in ready)

            await h.eventually(piled, timeout_s=10, what="failover onto the two survivors")
            fewest = 6
            stop = asyncio.Event()

            async def watch_ready() -> None:
                nonlocal fewest
                while not stop.is_set():
                    items = await workloads_of(kube, "even")
                    fewest = min(fewest, sum(1 for w in items if cond(w, "Ready") == "True"))
                    await asyncio.sleep(0.05)

            watcher = asyncio.create_task(watch_ready())
            newcomer = await h.FakeHost(url, "even-seal-0003", interval_s=0.5).start()
            live = [hosts[1], hosts[2], newcomer]

            async def settled() -> Any:
                counts = await spread(kube, "even")
                ready = await ready_workloads(kube, "even", 6)
                return ready and (counts if not rebalance or sorted(counts.values()) == [2, 2, 2] else None)

            final = await h.eventually(settled, timeout_s=30, what="replicas spread over 3 hosts")
            if not rebalance:
                await asyncio.sleep(3.0)
                final = await spread(kube, "even")
            stop.set()
            await watcher

            async def hosts_match() -> bool:
                items = await workloads_of(kube, "even")
                return all(set(x.workloads) == {w["metadata"]["uid"] for w in items
                                                if (w.get("status") or {}).get("hostId") == x.host_id} for x in live)

            await h.eventually(hosts_match, timeout_s=10, what="hosts run exactly what is placed on them")
        for x in [*hosts, newcomer]:
            await x.kill()
        await kube.close()
        return final, fewest, live


async def test_piled_replicas_spread_onto_a_joining_host_without_losing_a_ready_replica(tmp_path: Path) -> None:
    final, fewest, live = await pile_then_join(tmp_path, rebalance=True)
    assert sorted(final.values()) == [2, 2, 2]
    assert set(final) == {x.host_id for x in live}
    assert fewest >= 6, f"Ready replicas dropped to {fewest} while rebalancing"


async def test_nothing_moves_with_rebalancing_off(tmp_path: Path) -> None:
    final, _fewest, live = await pile_then_join(tmp_path, rebalance=False)
    assert sorted(final.values()) == [3, 3]
    assert live[2].host_id not in final
