"""Failover and resilience of the operator (real embedded API server, real nats-server).

Hosts are `FakeHost` protocol responders on the real NATS (see operator_harness.py): the point here
is the operator's judgement and timing, measured on the resulting Workload objects.

Checks:
- A host that vanishes (no heartbeats, no replies: kill -9 on the bus) is marked Ready False with
  reason HeartbeatExpired, and its replicas are Ready on other hosts within 5 s.
- A host killed just after a workload.status request reached it (so the request is never answered)
  does not hold up re-placement for the request's 5 s timeout: the replica is Ready elsewhere within
  the heartbeat expiry plus a second.
- A host that announces it is leaving is given up at once (well under the heartbeat expiry).
- A host that comes back is Ready again and the workloads moved away meanwhile are stopped on it.
- A host that was partitioned (heartbeats stop, its replicas are placed elsewhere) and returns ends
  running exactly the workloads placed on it, even when the operator that moved them was replaced by
  another (nothing about the move is kept in memory: the host's report is compared with placements).
- A nats-server restart (the operator's own bus lost) deletes nothing, un-readies nothing, moves
  nothing, and starts nothing again.
- An operator restart adopts running workloads: no start request is sent again, no object changes
  host, and conditions stay Ready.
- An operator stopped in the middle of a slow start leaves exactly one copy: its successor asks the
  same host again instead of starting the workload elsewhere.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import operator_harness as h
import pytest
from test_operator_placement import NS, cond, deployment, ready_workloads, workloads_of

from wasmfleet.kube import client, rest_paths
from wasmfleet.testing import nats as nats_helper

pytestmark = pytest.mark.timeout(120)


async def host_ready(kube: client.KubeClient, name: str) -> str:
    obj = await kube.get(rest_paths.HOSTS, NS, name)
    return cond(obj, "Ready")


async def test_dead_host_replicas_serve_elsewhere_within_5s_and_return(tmp_path: Path) -> None:
    with nats_helper.running_nats_server(tmp_path / "nats") as url, h.apiserver(tmp_path / "api") as kubeconfig:
        kube = await h.kube_client(kubeconfig)
        hosts = [await h.FakeHost(url, f"swift-hare-000{i}", interval_s=0.5).start() for i in range(3)]
        cfg = h.operator_settings(kubeconfig, url, expiry_s=1.5)
        async with h.running_operator(cfg):
            await kube.create(rest_paths.DEPLOYMENTS, NS, deployment("fo", replicas=3))
            await h.eventually(lambda: ready_workloads(kube, "fo", 3), what="3 ready")
            victim = hosts[0]
            moved_uid = next(iter(victim.workloads))
            killed_at = time.monotonic()
            await victim.kill()

            async def all_ready_elsewhere() -> Any:
                ready = await ready_workloads(kube, "fo", 3)
                return ready and all(w["status"]["hostId"] != victim.host_id for w in ready)

            await h.eventually(all_ready_elsewhere, timeout_s=10, what="replicas re-placed")
            elapsed = time.monotonic() - killed_at
            assert elapsed <= 5.0, f"failover took {elapsed:.2f}s"
            host = await kube.get(rest_paths.HOSTS, NS, "swift-hare-0000")
            assert cond(host, "Ready") == "False"
            ready_cond = next(c for c in host["status"]["conditions"] if c["type"] == "Ready")
            assert ready_cond["reason"] == "HeartbeatExpired"

            # Graceful leave: given up at once, not after the expiry.
            leaver = hosts[1]
            left_at = time.monotonic()
            await leaver.leave()

            async def leaver_not_ready() -> bool:
                return await host_ready(kube, "swift-hare-0001") == "False"

            await h.eventually(leaver_not_ready, what="leaving host not Ready")
            assert time.monotonic() - left_at < 1.5

            async def all_on_last_host() -> Any:
                ready = await ready_workloads(kube, "fo", 3)
                return ready and all(w["status"]["hostId"] == hosts[2].host_id for w in ready)

            await h.eventually(all_on_last_host, what="replicas moved off the leaving host")

            # The dead host returns (same ID, e.g. a paused process): Ready again, and the workload
            # that moved away is stopped there so it does not run twice.
            victim.workloads[moved_uid] = victim.workloads.get(moved_uid) or next(iter(hosts[2].workloads.values()))
            await victim.start()

            async def victim_back() -> tuple[str, bool] | None:
                state = (await host_ready(kube, "swift-hare-0000"), moved_uid in victim.workloads)
                return None if state != ("True", False) else state

            await h.eventually(victim_back, what="returning host Ready and cleaned up")
        for x in hosts:
            await x.kill()
        await kube.close()


async def test_a_status_probe_to_a_host_killed_meanwhile_does_not_delay_failover(tmp_path: Path) -> None:
    with nats_helper.running_nats_server(tmp_path / "nats") as url, h.apiserver(tmp_path / "api") as kubeconfig:
        kube = await h.kube_client(kubeconfig)
        hosts = [await h.FakeHost(url, f"mute-lark-000{i}", interval_s=0.5).start() for i in range(2)]
        # Sync every second, so a workload.status probe is always close; its timeout stays 5 s.
        cfg = h.operator_settings(kubeconfig, url, expiry_s=1.5, sync_interval_s=1.0)
        async with h.running_operator(cfg):
            await kube.create(rest_paths.DEPLOYMENTS, NS, deployment("probe", replicas=1))
            ready = await h.eventually(lambda: ready_workloads(kube, "probe", 1), what="1 ready")
            victim = next(x for x in hosts if x.host_id == ready[0]["status"]["hostId"])
            victim.mute_status = True
            asked = victim.status_requests

            async def probe_arrived() -> bool:
                return victim.status_requests > asked

            await h.eventually(probe_arrived, timeout_s=5, what="a status probe reaching the victim")
            killed_at = time.monotonic()
            await victim.kill()

            async def ready_elsewhere() -> Any:
                got = await ready_workloads(kube, "probe", 1)
                return got and got[0]["status"]["hostId"] != victim.host_id

            await h.eventually(ready_elsewhere, timeout_s=10, what="replica re-placed")
            elapsed = time.monotonic() - killed_at
            # Expiry 1.5 s after the last heartbeat; the unanswered probe would add up to 5 s more.
            assert elapsed <= 3.0, f"failover took {elapsed:.2f}s (held up by the unanswered probe?)"
        for x in hosts:
            await x.kill()
        await kube.close()


async def test_a_partitioned_host_that_returns_runs_exactly_what_is_placed_on_it(tmp_path: Path) -> None:
    with nats_helper.running_nats_server(tmp_path / "nats") as url, h.apiserver(tmp_path / "api") as kubeconfig:
        kube = await h.kube_client(kubeconfig)
        hosts = [await h.FakeHost(url, f"cut-vole-000{i}", interval_s=0.5).start() for i in range(3)]
        cfg = h.operator_settings(kubeconfig, url, expiry_s=1.5)
        async with h.running_operator(cfg):
            await kube.create(rest_paths.DEPLOYMENTS, NS, deployment("part", replicas=6))
            await h.eventually(lambda: ready_workloads(kube, "part", 6), what="6 ready")
            victim = max(hosts, key=lambda x: len(x.workloads))
            stranded = set(victim.workloads)
            assert stranded
            await victim.partition()

            async def moved_off() -> Any:
                ready = await ready_workloads(kube, "part", 6)
                return ready and all(w["status"]["hostId"] != victim.host_id for w in ready)

            await h.eventually(moved_off, timeout_s=10, what="replicas re-placed")
        # A different operator process leads when the host comes back: no memory of the move.
        async with h.running_operator(cfg):
            assert set(victim.workloads) == stranded  # still running the copies placed elsewhere
            await victim.heal()

            async def exactly_placed() -> Any:
                items = await workloads_of(kube, "part")
                placed = {w["metadata"]["uid"] for w in items if w["status"].get("hostId") == victim.host_id}
                return set(victim.workloads) == placed and await host_ready(kube, victim.name) == "True"

            await h.eventually(exactly_placed, timeout_s=20, what="returning host runs only its placements")
            for x in hosts:
                if x is not victim:
                    placed = {w["metadata"]["uid"] for w in await workloads_of(kube, "part")
                              if w["status"].get("hostId") == x.host_id}
                    assert set(x.workloads) == placed
        for x in hosts:
            await x.kill()
        await kube.close()


async def test_nats_restart_deletes_and_moves_nothing(tmp_path: Path) -> None:
    with nats_helper.nats_server(tmp_path / "nats") as server, h.apiserver(tmp_path / "api") as kubeconfig:
        url = server.url
        kube = await h.kube_client(kubeconfig)
        hosts = [await h.FakeHost(url, f"tidy-wren-000{i}", interval_s=0.5).start() for i in range(2)]
        async with h.running_operator(h.operator_settings(kubeconfig, url, expiry_s=1.5)):
            await kube.create(rest_paths.DEPLOYMENTS, NS, deployment("steady", replicas=2))
            before = await h.eventually(lambda: ready_workloads(kube, "steady", 2), what="2 ready")
            starts_before = sum(x.starts for x in hosts)
            placement = {w["metadata"]["uid"]: w["status"]["hostId"] for w in before}

            server.kill()  # the operator's bus (and the hosts') is gone for longer than the expiry
            await asyncio.sleep(4.0)
            items, _ = await kube.list(rest_paths.HOSTS, NS)
            assert sorted(i["metadata"]["name"] for i in items) == ["tidy-wren-0000", "tidy-wren-0001"]
            assert all(cond(i, "Ready") == "True" for i in items)
            during = await workloads_of(kube, "steady")
            assert {w["metadata"]["uid"]: w["status"]["hostId"] for w in during} == placement
            assert all(cond(w, "Ready") == "True" for w in during)

            server.start()
            await asyncio.sleep(4.0)  # reconnect + a full expiry: hosts report again, nothing must move
            after = await ready_workloads(kube, "steady", 2)
            assert after is not None
            assert {w["metadata"]["uid"]: w["status"]["hostId"] for w in after} == placement
            items, _ = await kube.list(rest_paths.HOSTS, NS)
            assert all(cond(i, "Ready") == "True" for i in items)
            assert sum(x.starts for x in hosts) == starts_before
        for x in hosts:
            await x.kill()
        await kube.close()


async def test_operator_restart_adopts_running_workloads(tmp_path: Path) -> None:
    with nats_helper.running_nats_server(tmp_path / "nats") as url, h.apiserver(tmp_path / "api") as kubeconfig:
        kube = await h.kube_client(kubeconfig)
        hosts = [await h.FakeHost(url, f"bold-newt-000{i}", interval_s=0.5).start() for i in range(2)]
        cfg = h.operator_settings(kubeconfig, url, sync_interval_s=1.0)
        async with h.running_operator(cfg):
            await kube.create(rest_paths.DEPLOYMENTS, NS, deployment("adopt", replicas=4))
            before = await h.eventually(lambda: ready_workloads(kube, "adopt", 4), what="4 ready")
        starts = sum(x.starts for x in hosts)
        placement = {w["metadata"]["uid"]: w["status"]["hostId"] for w in before}
        async with h.running_operator(cfg) as op:
            # Let the new operator sync, confirm with the hosts and run a few sync intervals.
            await h.eventually(lambda: _reconciled(op), what="workload reconciles after restart")
            await h.eventually(lambda: _synced_twice(op), timeout_s=10, what="sync checks")
            after = await ready_workloads(kube, "adopt", 4)
            assert after is not None
            assert {w["metadata"]["uid"]: w["status"]["hostId"] for w in after} == placement
        assert sum(x.starts for x in hosts) == starts, "operator restart must not restart workloads"
        for x in hosts:
            await x.kill()
        await kube.close()


def _workload_reconciles(op: Any) -> float:
    return sum(op.metrics.reconciles.labels("workloads", r)._value.get() for r in ("success", "requeue"))


async def _reconciled(op: Any) -> bool:
    return _workload_reconciles(op) >= 4


async def _synced_twice(op: Any) -> bool:
    return _workload_reconciles(op) >= 12


async def test_operator_dying_during_a_slow_start_leaves_one_copy(tmp_path: Path) -> None:
    """The chosen host is recorded before the start request, so a successor asks the same host."""
    with nats_helper.running_nats_server(tmp_path / "nats") as url, h.apiserver(tmp_path / "api") as kubeconfig:
        kube = await h.kube_client(kubeconfig)
        hosts = [await h.FakeHost(url, f"slow-yak-000{i}", start_delay_s=3.0).start() for i in range(3)]
        cfg = h.operator_settings(kubeconfig, url)
        async with h.running_operator(cfg):
            await kube.create(rest_paths.DEPLOYMENTS, NS, deployment("slow"))

            async def start_sent() -> bool:
                return sum(x.starts for x in hosts) == 1

            await h.eventually(start_sent, what="start request sent")
        # The first operator stopped while the host was still pulling: the choice is on record.
        pending = (await workloads_of(kube, "slow"))[0]
        asked = next(x for x in hosts if x.starts)
        assert pending["status"]["hostId"] == asked.host_id
        placement_cond = next(c for c in pending["status"]["conditions"] if c["type"] == "Placement")
        assert (placement_cond["status"], placement_cond["reason"]) == ("Unknown", "Starting")
        async with h.running_operator(cfg):
            ready = await h.eventually(lambda: ready_workloads(kube, "slow", 1), what="ready under the successor")
            uid = ready[0]["metadata"]["uid"]
            holders = [x for x in hosts if uid in x.workloads]
            assert len(holders) == 1 and holders[0].host_id == ready[0]["status"]["hostId"]
            assert sum(x.starts for x in hosts if x is not holders[0]) == 0
        for x in hosts:
            await x.kill()
        await kube.close()
