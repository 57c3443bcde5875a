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

import pydantic

from wasmfleet.api import conditions, groups, models
from wasmfleet.kube import errors, owners, rest_paths, running
from wasmfleet.operator import context, statuses

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


class ReplicaSetController:
    def __init__(self, ctx: context.Context) -> None:
        self._ctx = ctx
        self._reader = ctx.readers["replicasets"]

    async def reconcile(self, key: str) -> float | None:
        ctx = self._ctx
        ns, name = rest_paths.split_key(key)
        obj = await self._reader.read(key)
        if obj is None:
            return None
        if obj["metadata"].get("deletionTimestamp"):
            return None  # the API server's garbage collector removes the children
        try:
            rs = models.WorkloadReplicaSet.model_validate(obj)
        except pydantic.ValidationError as exc:
            raise running.PermanentError(f"invalid WorkloadReplicaSet: {exc.errors()[0]['msg']}") from exc
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
        conds = status.conditions
        statuses.ensure_order(conds, CONDITIONS, rs.metadata.generation)
        gen = rs.metadata.generation

        def put(type_: str, ok: bool, reason: str, message: str) -> None:
            conditions.set_condition(conds, type_, "True" if ok else "False", reason=reason, message=message,
                                     observed_generation=gen)

        put("ScaleUp", current >= desired, "Scaled" if current >= desired else "ScalingUp",
            f"{current}/{desired} replicas exist")
        put("ScaleDown", current <= desired, "Scaled" if current <= desired else "ScalingDown",
            f"{current}/{desired} replicas exist")
        put("Ready", ready >= desired, "Ready" if ready >= desired else "ReplicasNotReady",
            f"{ready}/{desired} replicas ready")
        written = await statuses.write(ctx.kube, rest_paths.REPLICASETS, obj,
                                       status.model_dump(by_alias=True, exclude_none=True, mode="json"))
        if written is not None:
            self._reader.wrote(written)
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
