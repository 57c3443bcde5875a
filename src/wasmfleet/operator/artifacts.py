"""The Artifact controller: publish the artifact's URL, and keep it while deployments use it.

status.artifactUrl is what `artifact://<name>` images resolve to; changing spec.image therefore
changes the resolved template of every WorkloadDeployment bound to it, which rolls them out.
Conditions Sync, Published, Ready. A finalizer blocks deletion while a WorkloadDeployment in the
namespace still references the Artifact.
"""

from __future__ import annotations

import pydantic

from wasmfleet.api import conditions, groups, models
from wasmfleet.kube import errors, rest_paths, running
from wasmfleet.operator import context, deployments, statuses

CONDITIONS = ("Sync", "Published", "Ready")


class ArtifactController:
    def __init__(self, ctx: context.Context) -> None:
        self._ctx = ctx

    def users(self, namespace: str, name: str) -> list[str]:
        return sorted(
            d["metadata"]["name"]
            for d in self._ctx.informers.deployments.list(namespace)
            if name in deployments.referenced_artifacts(d)
        )

    async def reconcile(self, key: str) -> float | None:
        ctx = self._ctx
        ns, name = rest_paths.split_key(key)
        try:
            obj = await ctx.kube.get(rest_paths.ARTIFACTS, ns, name)
        except errors.NotFound:
            return None
        try:
            art = models.Artifact.model_validate(obj)
        except pydantic.ValidationError as exc:
            raise running.PermanentError(f"invalid Artifact: {exc.errors()[0]['msg']}") from exc
        finalizers = art.metadata.finalizers
        if art.metadata.deletion_timestamp:
            users = self.users(ns or "", name)
            if users:
                await ctx.recorder.record(obj, "Warning", "InUse",
                                          f"deletion waits: used by WorkloadDeployment {', '.join(users)}")
                return 5.0
            if groups.FINALIZER_ARTIFACT in finalizers:
                rest = [f for f in finalizers if f != groups.FINALIZER_ARTIFACT]
                await ctx.kube.patch(rest_paths.ARTIFACTS, ns, name, {"metadata": {"finalizers": rest or None}})
            return None
        if groups.FINALIZER_ARTIFACT not in finalizers:
            obj = await ctx.kube.patch(
                rest_paths.ARTIFACTS, ns, name, {"metadata": {"finalizers": [*finalizers, groups.FINALIZER_ARTIFACT]}}
            )
        status = art.status  # freshly parsed: ours to change
        gen = art.metadata.generation
        status.artifact_url = art.spec.image
        status.observed_generation = gen
        statuses.ensure_order(status.conditions, CONDITIONS, gen)
        for type_, reason in (("Sync", "Synced"), ("Published", "Published"), ("Ready", "Ready")):
            conditions.set_condition(status.conditions, type_, "True", reason=reason,
                                     message=f"artifact available at {art.spec.image}", observed_generation=gen)
        await statuses.write(ctx.kube, rest_paths.ARTIFACTS, obj,
                             status.model_dump(by_alias=True, exclude_none=True, mode="json"))
        return None
