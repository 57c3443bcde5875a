"""The WorkloadDeployment controller: one ReplicaSet per template version, rolled out by policy.

The template is first resolved (`artifact://<name>` images replaced by the bound Artifact's URL and
the deployment label added), then hashed; the ReplicaSet is <deployment>-<hash>. A new hash (template
edit, or an Artifact now pointing elsewhere) means a new ReplicaSet:
- RollingUpdate: the new set is created at full size; old sets stay until the new one is Ready,
  then they are deleted (their Workloads go with them through garbage collection).
- Recreate: old sets are scaled to 0 first; the new set grows once no old replica remains.
spec.replicas (also through /scale, e.g. by a HorizontalPodAutoscaler) sizes the current set.
"""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

from wasmfleet.api import groups, models
from wasmfleet.kube import client, errors, owners, rest_paths
from wasmfleet.operator import reconciling, replicasets, startrequests

CONDITIONS = ("Progressing", "Ready")


def selector(name: str) -> str:
    return f"{groups.LABEL_WORKLOAD_DEPLOYMENT}={name}"


def resolved_template(wd: models.WorkloadDeployment, artifact_urls: dict[str, str]) -> dict[str, Any]:
    """The template as its Workloads will carry it; raises MissingReference for an unready Artifact."""
    template = wd.spec.template.to_json()
    template = copy.deepcopy(template)
    bindings = {b.name: b.artifact_from.name for b in wd.spec.artifacts}
    spec = template["spec"]
    targets = [*spec.get("components", [])]
    if spec.get("service"):
        targets.append(spec["service"])
    for target in targets:
        image = target.get("image", "")
        if image.startswith(startrequests.ARTIFACT_SCHEME):
            binding = image[len(startrequests.ARTIFACT_SCHEME):]
            artifact = bindings.get(binding, binding)  # unbound: an Artifact of that name
            url = artifact_urls.get(artifact)
            if not url:
                raise startrequests.MissingReference("Artifact", artifact, "has no artifactUrl yet")
            target["image"] = url
    if wd.spec.kubernetes is not None and "kubernetes" not in spec:
        # Upstream's place for it; every Workload needs it (routing, EndpointSlices). The template's own wins.
        spec["kubernetes"] = wd.spec.kubernetes.to_json()
    labels = template.setdefault("metadata", {}).setdefault("labels", {})
    labels[groups.LABEL_WORKLOAD_DEPLOYMENT] = wd.metadata.name
    return template


def template_hash(template: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:10]


def referenced_artifacts(wd: dict[str, Any]) -> set[str]:
    spec = wd.get("spec") or {}
    names = {(b.get("artifactFrom") or {}).get("name", "") for b in spec.get("artifacts") or []}
    tspec = (spec.get("template") or {}).get("spec") or {}
    images = [c.get("image", "") for c in tspec.get("components") or []]
    images.append((tspec.get("service") or {}).get("image", ""))
    names.update(i[len(startrequests.ARTIFACT_SCHEME):] for i in images if i.startswith(startrequests.ARTIFACT_SCHEME))
    names.discard("")
    return names


class DeploymentController(reconciling.Reconciler[models.WorkloadDeployment]):
    kind, resource, cache = "WorkloadDeployment", rest_paths.DEPLOYMENTS, "deployments"
    model = models.WorkloadDeployment

    def artifact_changed(self, _event: str, obj: client.Obj) -> None:
        """An Artifact changed: deployments bound to it may resolve to a new template (a rollout)."""
        ns = obj["metadata"].get("namespace")
        name = obj["metadata"]["name"]
        for wd in self.ctx.informers.deployments.list(ns):
            if name in referenced_artifacts(wd):
                self.ctx.enqueue["deployments"](rest_paths.key_of(wd))

    def workload_gone(self, event: str, obj: client.Obj) -> None:
        """A Workload was deleted: a Recreate rollout waiting for its old set's last replica to go
        may proceed. The set's own event does not say so: its status counts only live replicas, so
        it changed when the replica began terminating and not again when it went."""
        if event != "DELETED":
            return
        ref = owners.controller_of(obj, "WorkloadReplicaSet")
        ns = obj["metadata"].get("namespace")
        rs = self.ctx.informers.replicasets.get(f"{ns}/{ref['name']}") if ref else None
        wd_ref = owners.controller_of(rs, "WorkloadDeployment") if rs else None
        if wd_ref is not None:
            self.ctx.enqueue["deployments"](f"{ns}/{wd_ref['name']}")

    async def converge(self, obj: client.Obj, wd: models.WorkloadDeployment) -> float | None:
        ctx = self.ctx
        ns, name = wd.metadata.namespace, wd.metadata.name or ""
        status = wd.status  # freshly parsed: ours to change
        status.selector = selector(name)
        status.observed_generation = wd.metadata.generation
        conds = reconciling.Conditions(status.conditions, CONDITIONS, wd.metadata.generation)
        put = conds.set

        async def finish(delay: float | None) -> float | None:
            await self.write_status(obj, status)
            return delay

        urls = {}
        for art_name in referenced_artifacts(obj):
            art = ctx.informers.artifacts.get(f"{ns}/{art_name}") or {}
            url = (art.get("status") or {}).get("artifactUrl")
            if url:
                urls[art_name] = str(url)
        try:
            template = resolved_template(wd, urls)
        except startrequests.MissingReference as exc:
            put("Progressing", "False", "ArtifactNotReady", str(exc))
            put("Ready", "False", "ArtifactNotReady", str(exc))
            return await finish(ctx.settings.reconciling.unschedulable_retry_s)
        rs_name = f"{name}-{template_hash(template)}"
        rs_reader = ctx.readers["replicasets"]
        owned = ctx.informers.replicasets.by_index(replicasets.OWNER_INDEX, obj["metadata"]["uid"])
        current = next((r for r in owned if r["metadata"]["name"] == rs_name), None)
        old = [r for r in owned if r["metadata"]["name"] != rs_name]
        desired = wd.spec.replicas
        recreate = wd.spec.deploy_policy == "Recreate"

        if recreate:
            for rs in old:
                if int((rs.get("spec") or {}).get("replicas", 0)) != 0:
                    rs_reader.wrote(await ctx.kube.patch(rest_paths.REPLICASETS, ns, rs["metadata"]["name"],
                                                         {"spec": {"replicas": 0}}))
                if not replicasets.children_of(ctx, rs):
                    await ctx.kube.delete(rest_paths.REPLICASETS, ns, rs["metadata"]["name"])
            old_remaining = [rs for rs in old if replicasets.children_of(ctx, rs)]
            target = 0 if old_remaining else desired
        else:
            target = desired

        if current is None:
            body = {
                "apiVersion": groups.API_VERSION,
                "kind": "WorkloadReplicaSet",
                "metadata": {
                    "name": rs_name,
                    "namespace": ns,
                    "labels": {
                        **template["metadata"].get("labels", {}),
                        groups.LABEL_TEMPLATE_HASH: rs_name.rsplit("-", 1)[1],
                    },
                    "ownerReferences": [owners.owner_reference(obj)],
                },
                "spec": {"replicas": target, "template": template},
            }
            try:
                current = await ctx.kube.create(rest_paths.REPLICASETS, ns, body)
            except errors.Conflict:
                current = await ctx.kube.get(rest_paths.REPLICASETS, ns, rs_name)
        elif int((current.get("spec") or {}).get("replicas", 0)) != target:
            current = rs_reader.wrote(
                await ctx.kube.patch(rest_paths.REPLICASETS, ns, rs_name, {"spec": {"replicas": target}}))

        counts = ((current.get("status") or {}).get("replicas")) or {}
        ready = int(counts.get("ready", 0))
        rolled = ready >= desired and int(counts.get("expected", -1)) == desired
        if not recreate and rolled:
            for rs in old:
                await ctx.kube.delete(rest_paths.REPLICASETS, ns, rs["metadata"]["name"])
            old = []
        if old:
            newest_old = max(old, key=lambda r: r["metadata"].get("creationTimestamp", ""))
            status.previous_replica_set = newest_old["metadata"]["name"]
        elif status.current_replica_set and status.current_replica_set != rs_name:
            status.previous_replica_set = status.current_replica_set
        status.current_replica_set = rs_name
        status.replicas = models.ReplicaCounts(
            expected=desired,
            current=int(counts.get("current", 0)),
            ready=ready,
            unavailable=max(0, desired - ready),
        )
        status.current_replicas = int(counts.get("current", 0))
        if old:
            put("Progressing", "True", "RollingOut",
                f"replacing {', '.join(r['metadata']['name'] for r in old)} with {rs_name}")
        else:
            put("Progressing", "True", "Complete", f"{rs_name} is the current replica set")
        if rolled and not old:
            put("Ready", "True", "Ready", f"{ready}/{desired} replicas ready")
        else:
            put("Ready", "False", "ReplicasNotReady", f"{ready}/{desired} replicas ready")
        return await finish(None)
