"""The WorkloadReplicaSet controller: keep `spec.replicas` Workloads from the template.

Children are named <replicaset>-<5 chars derived from the set's uid and an ordinal>: deterministic,
so creating one twice (from a stale cache) is refused by the API server instead of duplicating a
replica. Scale-down removes the least useful replicas first: not placed, then not Ready, then the
newest. Conditions: ScaleUp, ScaleDown, Ready.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
from calendar import timegm
from collections import Counter
from collections.abc import Hashable
from datetime import UTC, datetime
from typing import Any

from wasmfleet.api import groups, models
from wasmfleet.kube import client, errors, owners, rest_paths
from wasmfleet.operator import context, reconciling, scheduling
from wasmfleet.scheduler import placement

log = logging.getLogger(__name__)

CONDITIONS = ("ScaleUp", "ScaleDown", "Ready")
_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # Kubernetes' suffix alphabet: no vowels, no look-alikes


def child_name(rs_name: str, rs_uid: str, ordinal: int) -> str:
    digest = hashlib.sha256(f"{rs_uid}/{ordinal}".encode()).digest()
    suffix = "".join(_ALPHABET[b % len(_ALPHABET)] for b in digest[:5])
    return f"{rs_name[:247]}-{suffix}"


def is_ready(wl: dict[str, Any]) -> bool:
    conds = (wl.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds)


def what_the_owner_reads(wl: dict[str, Any]) -> Hashable:
    """Everything of a child Workload this controller's reconcile looks at (besides its name and
    creation time, which do not change): its events that leave these alone need not wake its set."""
    meta = wl["metadata"]
    status = wl.get("status") or {}
    return (bool(meta.get("deletionTimestamp")), status.get("hostId"), is_ready(wl),
            (meta.get("annotations") or {}).get(REPLACE_ANNOTATION), meta.get("uid"))


def children_of(ctx: context.Context, owner: dict[str, Any]) -> list[dict[str, Any]]:
    return ctx.informers.workloads.by_index(OWNER_INDEX, owner["metadata"]["uid"])


OWNER_INDEX = "owner-uid"
# On a Workload: replace this replica (start another first, then delete it); value = when marked.
REPLACE_ANNOTATION = f"{groups.GROUP}/replace"


def _marked(w: dict[str, Any]) -> bool:
    return REPLACE_ANNOTATION in (w["metadata"].get("annotations") or {})


def _age_s(stamp: str) -> float:
    try:
        return time.time() - timegm(time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return float("inf")


class ReplicaSetController(reconciling.Reconciler[models.WorkloadReplicaSet]):
    kind, resource, cache = "WorkloadReplicaSet", rest_paths.REPLICASETS, "replicasets"
    model = models.WorkloadReplicaSet

    async def converge(self, obj: client.Obj, rs: models.WorkloadReplicaSet) -> float | None:
        ctx = self.ctx
        ns, name = rs.metadata.namespace, rs.metadata.name or ""
        desired = rs.spec.replicas
        after: float | None = None
        children = children_of(ctx, obj)
        live = [w for w in children if not w["metadata"].get("deletionTimestamp")]
        created = deleted = 0
        surge = await self._replacements(live, desired)
        if surge is None:  # the replacements serve: the replaced replicas went
            live = [w for w in live if not _marked(w)]
            deleted, surge = 0, 0
        target = desired + surge
        if len(live) < target:
            used = {w["metadata"]["name"] for w in children}
            ordinal = 0
            while len(live) + created < target:
                child = child_name(name, rs.metadata.uid or "", ordinal)
                ordinal += 1
                if child in used:
                    continue
                # Conflict: it exists already (cache lagging) and counts once the watch shows it.
                with contextlib.suppress(errors.Conflict):
                    await ctx.kube.create(rest_paths.WORKLOADS, ns, self._workload(obj, rs, child))
                created += 1
        elif len(live) > target:
            crowding = Counter((w.get("status") or {}).get("hostId") for w in live)

            def usefulness(w: dict[str, Any]) -> tuple[bool, bool, bool, int]:
                host_id = (w.get("status") or {}).get("hostId")
                return (not _marked(w), bool(host_id), is_ready(w), -crowding[host_id])

            newest_first = sorted(live, key=lambda w: w["metadata"].get("creationTimestamp", ""), reverse=True)
            for victim in sorted(newest_first, key=usefulness)[: len(live) - target]:
                await ctx.kube.delete(rest_paths.WORKLOADS, ns, victim["metadata"]["name"])
                deleted += 1
        elif not surge and not created:
            after = await self._rebalance(live, desired, rs)
        ready = sum(1 for w in live if is_ready(w))
        current = len(live) + created - deleted
        status = rs.status  # freshly parsed: ours to change
        status.observed_generation = rs.metadata.generation
        status.replicas = models.ReplicaCounts(
            expected=desired, current=current, ready=ready, unavailable=max(0, desired - ready)
        )
        conds = reconciling.Conditions(status.conditions, CONDITIONS, rs.metadata.generation)

        def put(type_: str, ok: bool, reason: str, message: str) -> None:
            conds.set(type_, "True" if ok else "False", reason, message)

        rebalancing = " (one more while a replica moves to another host)" if surge else ""
        put("ScaleUp", current >= target, "Scaled" if current >= target else "ScalingUp",
            f"{current}/{desired} replicas exist{rebalancing}")
        put("ScaleDown", current <= target, "Scaled" if current <= target else "ScalingDown",
            f"{current}/{desired} replicas exist{rebalancing}")
        put("Ready", ready >= desired, "Ready" if ready >= desired else "ReplicasNotReady",
            f"{ready}/{desired} replicas ready")
        await self.write_status(obj, status)
        return after

    # ------------------------------------------------------------------ rebalancing

    async def _replacements(self, live: list[client.Obj], desired: int) -> int | None:
        """Replicas marked for replacement (see `_rebalance`): how many extra replicas to run while
        their replacements start; None when the replacements are Ready and the marked ones were
        deleted. A replacement that is not Ready within the timeout is given up (the mark removed:
        the ordinary scale-down then removes the extra replica, the unready one first)."""
        marked = [w for w in live if _marked(w)]
        if not marked:
            return 0
        ns = marked[0]["metadata"].get("namespace")
        if sum(1 for w in live if not _marked(w) and is_ready(w)) >= desired:
            for w in marked:
                await self.ctx.kube.delete(rest_paths.WORKLOADS, ns, w["metadata"]["name"])
            return None
        timeout = self.ctx.settings.reconciling.rebalance_timeout_s
        expired = [w for w in marked if _age_s(w["metadata"]["annotations"][REPLACE_ANNOTATION]) > timeout]
        for w in expired:
            await self.ctx.kube.patch(rest_paths.WORKLOADS, ns, w["metadata"]["name"],
                                      {"metadata": {"annotations": {REPLACE_ANNOTATION: None}}})
        return len(marked) - len(expired)

    async def _rebalance(
        self, live: list[client.Obj], desired: int, rs: models.WorkloadReplicaSet
    ) -> float | None:
        """Replicas piled on fewer hosts than could take them (after a failover, or once hosts join):
        mark one replica on the most crowded host for replacement. The next reconciles start one
        replica more (the scheduler spreads it onto the emptiest eligible host) and delete the
        marked one only once every other replica is Ready, so the gateway, which routes only to
        Ready replicas, always has the full count to route to. One move at a time. Returns when to
        look again if the decision has to wait."""
        ctx = self.ctx
        if (
            not ctx.settings.reconciling.rebalance
            or len(live) != desired
            or not all(is_ready(w) for w in live)
        ):
            return None
        names: dict[str, str] = {}
        counts: Counter[str] = Counter()
        for w in live:
            host_id = str((w.get("status") or {}).get("hostId") or "")
            rec = ctx.registry.record(host_id)
            if rec is None:
                return None  # a replica on a host we know nothing about: not a judgement to act on
            names[w["metadata"]["name"]] = rec.name
            counts[rec.name] += 1
        if max(counts.values(), default=0) < 2:
            return None  # no host holds two: nothing can be two more than another (the common case)
        if ctx.registry.grace_remaining() > 0:
            return max(1.0, ctx.registry.grace_remaining())  # a partial view of the fleet: decide later
        key = f"{rs.metadata.namespace}/{rs.metadata.name}"
        req = scheduling.requirements(key, rs.spec.template.spec, rs.metadata.uid or "")
        candidates = scheduling.host_candidates(ctx.registry, ctx.assignments)
        move = placement.rebalance_move(req, candidates, counts)
        if move is None:
            return None
        unsettled = set(scheduling.hosts_running_unplaced(ctx.registry, ctx.assignments))
        if any(c.host_id in unsettled for c in candidates if c.name in (move.source, move.target)):
            # A host back from a partition still runs copies the audit has not stopped yet: its
            # counts mislead, and a replica replaced now could leave a copy there that nobody can
            # name once its Workload is deleted. Decide after the next audits.
            return 2 * ctx.settings.reconciling.audit_interval_s
        victim = sorted(n for n, host in names.items() if host == move.source)[0]
        log.info("replicaset %s: %d replicas on %s, %d on %s: replacing %s", key, counts[move.source],
                 move.source, counts[move.target], move.target, victim)
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        await ctx.kube.patch(rest_paths.WORKLOADS, rs.metadata.namespace, victim,
                             {"metadata": {"annotations": {REPLACE_ANNOTATION: stamp}}})
        return None

    def _workload(
        self, owner: dict[str, Any], rs: models.WorkloadReplicaSet, name: str
    ) -> dict[str, Any]:
        labels = dict(rs.spec.template.metadata.labels)
        labels[groups.LABEL_WORKLOAD_REPLICASET] = rs.metadata.name or ""
        deployment = rs.metadata.labels.get(groups.LABEL_WORKLOAD_DEPLOYMENT)
        if deployment:
            labels[groups.LABEL_WORKLOAD_DEPLOYMENT] = deployment
        return {
            "apiVersion": groups.API_VERSION,
            "kind": "Workload",
            "metadata": {
                "name": name,
                "namespace": rs.metadata.namespace,
                "labels": labels,
                "annotations": dict(rs.spec.template.metadata.annotations),
                "ownerReferences": [owners.owner_reference(owner)],
                # From birth, so the Workload controller need not add it (one write fewer each).
                "finalizers": [groups.FINALIZER_WORKLOAD],
            },
            "spec": rs.spec.template.spec.to_json(),
        }
