"""The Artifact controller: publish the artifact's URL, and keep it while deployments use it.

status.artifactUrl is what `artifact://<name>` images resolve to; changing spec.image therefore
changes the resolved template of every WorkloadDeployment bound to it, which rolls them out.
Conditions Sync, Published, Ready. A finalizer blocks deletion while a WorkloadDeployment in the
namespace still references the Artifact.
"""

from __future__ import annotations

from wasmfleet.api import groups, models
from wasmfleet.kube import client, rest_paths
from wasmfleet.operator import deployments, reconciling

CONDITIONS = ("Sync", "Published", "Ready")


class ArtifactController(reconciling.Reconciler[models.Artifact]):
    kind, resource, cache, model = "Artifact", rest_paths.ARTIFACTS, "artifacts", models.Artifact

    def users(self, namespace: str, name: str) -> list[str]:
        return sorted(
            d["metadata"]["name"]
            for d in self.ctx.informers.deployments.list(namespace)
            if name in deployments.referenced_artifacts(d)
        )

    async def finalize(self, obj: client.Obj) -> float | None:
        """Deletion waits while a WorkloadDeployment in the namespace references the Artifact."""
        meta = obj["metadata"]
        ns, name = meta.get("namespace"), meta["name"]
        users = self.users(ns or "", name)
        if users:
            await self.ctx.recorder.record(obj, "Warning", "InUse",
                                           f"deletion waits: used by WorkloadDeployment {', '.join(users)}")
            return 5.0
        finalizers = list(meta.get("finalizers") or [])
        if groups.FINALIZER_ARTIFACT in finalizers:
            rest = [f for f in finalizers if f != groups.FINALIZER_ARTIFACT]
            self.wrote(await self.ctx.kube.patch(rest_paths.ARTIFACTS, ns, name,
                                                 {"metadata": {"finalizers": rest or None}}))
        return None

    async def converge(self, obj: client.Obj, art: models.Artifact) -> float | None:
        ns, name = art.metadata.namespace, art.metadata.name or ""
        finalizers = art.metadata.finalizers
        if groups.FINALIZER_ARTIFACT not in finalizers:
            obj = self.wrote(await self.ctx.kube.patch(
                rest_paths.ARTIFACTS, ns, name, {"metadata": {"finalizers": [*finalizers, groups.FINALIZER_ARTIFACT]}}
            ))
        status = art.status  # freshly parsed: ours to change
        gen = art.metadata.generation
        status.artifact_url = art.spec.image
        status.observed_generation = gen
        conds = reconciling.Conditions(status.conditions, CONDITIONS, gen)
        for type_, reason in (("Sync", "Synced"), ("Published", "Published"), ("Ready", "Ready")):
            conds.set(type_, "True", reason, f"artifact available at {art.spec.image}")
        await self.write_status(obj, status)
        return None
