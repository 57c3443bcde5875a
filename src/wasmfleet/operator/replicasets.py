"""The WorkloadReplicaSet controller: keep `spec.replicas` Workloads from the template.

Children are named <replicaset>-<5 chars derived from the set's uid and an ordinal>: deterministic,
so creating one twice (from a stale cache) is refused by the API server instead of duplicating a
replica. Scale-down removes the least useful replicas first: not placed, then not Ready, then the
newest. Conditions: ScaleUp, ScaleDown, Ready.
"""

from __future__ import annotations

import contextlib
import hashlib
from typing import Any

from wasmfleet.api import groups, models
from wasmfleet.kube import client, errors, owners, rest_paths
from wasmfleet.operator import context, reconciling

CONDITIONS = ("ScaleUp", "ScaleDown", "Ready")
_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # Kubernetes' suffix alphabet: no vowels, no look-alikes


def child_name(rs_name: str, rs_uid: str, ordinal: int) -> str:
    digest = hashlib.sha256(f"{rs_uid}/{ordinal}".encode()).digest()
    suffix = "".join(_ALPHABET[b % len(_ALPHABET)] for b in digest[:5])
    return f"{rs_name[:247]}-{suffix}"


def is_ready(wl: dict[str, Any]) -> bool:
    conds = (wl.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds)


def children_of(ctx: context.Context, owner: dict[str, Any]) -> list[dict[str, Any]]:
    return ctx.informers.workloads.by_index(OWNER_INDEX, owner["metadata"]["uid"])


OWNER_INDEX = "owner-uid"


class ReplicaSetController(reconciling.Reconciler[models.WorkloadReplicaSet]):
    kind, resource, cache = "WorkloadReplicaSet", rest_paths.REPLICASETS, "replicasets"
    model = models.WorkloadReplicaSet

    async def converge(self, obj: client.Obj, rs: models.WorkloadReplicaSet) -> float | None:
        ctx = self.ctx
        ns, name = rs.metadata.namespace, rs.metadata.name or ""
        desired = rs.spec.replicas
        children = children_of(ctx, obj)
        live = [w for w in children if not w["metadata"].get("deletionTimestamp")]
        created = deleted = 0
        if len(live) < desired:
            used = {w["metadata"]["name"] for w in children}
            ordinal = 0
            while len(live) + created < desired:
                child = child_name(name, rs.metadata.uid or "", ordinal)
                ordinal += 1
                if child in used:
                    continue
                # Conflict: it exists already (cache lagging) and counts once the watch shows it.
                with contextlib.suppress(errors.Conflict):
                    await ctx.kube.create(rest_paths.WORKLOADS, ns, self._workload(obj, rs, child))
                created += 1
        elif len(live) > desired:
            def usefulness(w: dict[str, Any]) -> tuple[bool, bool]:
                return (bool((w.get("status") or {}).get("hostId")), is_ready(w))

            newest_first = sorted(live, key=lambda w: w["metadata"].get("creationTimestamp", ""), reverse=True)
            for victim in sorted(newest_first, key=usefulness)[: len(live) - desired]:
                await ctx.kube.delete(rest_paths.WORKLOADS, ns, victim["metadata"]["name"])
                deleted += 1
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

        put("ScaleUp", current >= desired, "Scaled" if current >= desired else "ScalingUp",
            f"{current}/{desired} replicas exist")
        put("ScaleDown", current <= desired, "Scaled" if current <= desired else "ScalingDown",
            f"{current}/{desired} replicas exist")
        put("Ready", ready >= desired, "Ready" if ready >= desired else "ReplicasNotReady",
            f"{ready}/{desired} replicas ready")
        await self.write_status(obj, status)
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
