"""The Artifact controller: pull a registry image once into the JetStream Object Store, keep it current.

For an OCI registry image the controller
- pulls spec.image (with spec.imagePullSecret), verifies it, stores it in the Object Store bucket
  under its digest, and sets status.artifactUrl to `nats://<bucket>/sha256:<hex>`, with status.digest,
  manifestDigest, size and lastPullTime; conditions Sync > Published > Ready;
- re-checks the tag every `settings.artifacts.poll_interval_s` with ONE HEAD request (whatever else
  triggers a reconcile in between). A new manifest digest is pulled and published; the new URL
  changes the resolved template of every WorkloadDeployment bound to the Artifact, which rolls them
  out (deployments.DeploymentController.artifact_changed). Unchanged content writes nothing;
- on failure names the cause in Sync (and in Published/Ready when nothing was published for this
  spec.image yet). The previous artifactUrl stays, so nothing already running is touched. Only a
  retryable failure (unreachable registry, 5xx, timeout) is retried with the runner's backoff;
- deletes a published object once no Artifact, ReplicaSet or Workload refers to it (a GC pass at
  most once per poll interval, only when the operator watches every namespace).
file://, http(s):// and nats:// images are published as they are (status.artifactUrl = spec.image).

A finalizer blocks deletion while a WorkloadDeployment in the namespace still references the Artifact.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from wasmfleet.api import conditions, groups, models
from wasmfleet.artifacts import publishing, pull_secrets, references
from wasmfleet.artifacts.errors import ArtifactError
from wasmfleet.kube import client, rest_paths, running
from wasmfleet.operator import context, deployments, reconciling

log = logging.getLogger(__name__)

CONDITIONS = ("Sync", "Published", "Ready")


def images_of(spec: dict[str, Any]) -> list[str]:
    """Component and service images of a Workload spec (also a template's spec)."""
    images = [str(c.get("image", "")) for c in spec.get("components") or []]
    images.append(str((spec.get("service") or {}).get("image", "")))
    return [i for i in images if i]


class ArtifactController(reconciling.Reconciler[models.Artifact]):
    kind, resource, cache, model = "Artifact", rest_paths.ARTIFACTS, "artifacts", models.Artifact

    def __init__(self, ctx: context.Context) -> None:
        super().__init__(ctx)
        cfg = ctx.settings.artifacts
        self.poll_s: float = cfg.poll_interval_s
        self.publish_settings = publishing.PublishSettings(bucket=cfg.bucket, replicas=cfg.bucket_replicas)
        # key -> (what the last registry call was made for, monotonic time before which no new call
        # is made for the same thing): one HEAD per interval per Artifact, whatever triggers reconciles.
        self._next_check: dict[str, tuple[tuple[Any, ...], float]] = {}
        # key -> digest this controller last published, for GC before the informer sees our write.
        self._published: dict[str, str] = {}
        self._in_flight = 0  # publishes between upload and status write: GC waits for them
        self._last_gc = 0.0

    def users(self, namespace: str, name: str) -> list[str]:
        return sorted(
            d["metadata"]["name"]
            for d in self.ctx.informers.deployments.list(namespace)
            if name in deployments.referenced_artifacts(d)
        )

    def secret_changed(self, _event: str, obj: client.Obj) -> None:
        """A Secret changed: Artifacts pulling with it are looked at again (a fixed pull secret)."""
        ns, name = obj["metadata"].get("namespace"), obj["metadata"]["name"]
        for art in self.ctx.informers.artifacts.list(ns):
            if ((art.get("spec") or {}).get("imagePullSecret") or {}).get("name") == name:
                self.ctx.enqueue["artifacts"](rest_paths.key_of(art))

    async def finalize(self, obj: client.Obj) -> float | None:
        """Deletion waits while a WorkloadDeployment in the namespace references the Artifact."""
        meta = obj["metadata"]
        ns, name = meta.get("namespace"), meta["name"]
        users = self.users(ns or "", name)
        if users:
            await self.ctx.recorder.record(obj, "Warning", "InUse",
                                           f"deletion waits: used by WorkloadDeployment {', '.join(users)}")
            return 5.0
        key = f"{ns}/{name}"
        self._next_check.pop(key, None)
        self._published.pop(key, None)
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
        status.observed_generation = gen
        conds = reconciling.Conditions(status.conditions, CONDITIONS, gen)
        image = art.spec.image
        if not publishing.is_registry_reference(image):
            self._use_as_is(status, conds, image)
            await self.write_status(obj, status)
            return None

        key = f"{ns}/{name}"
        secret = self._pull_secret(art)
        fingerprint = (gen, image, ((secret or {}).get("metadata") or {}).get("resourceVersion"))
        last = self._next_check.get(key)
        now = time.monotonic()
        if last is not None and last[0] == fingerprint and now < last[1]:
            return last[1] - now  # checked recently: no registry call until the interval is up
        self._next_check[key] = (fingerprint, now + self.poll_s)
        try:
            creds = self._credentials(art, secret)
            if await self._still_current(status, image, creds):
                conds.set("Sync", "True", "UpToDate", f"{image} still resolves to {status.manifest_digest}")
                await self.write_status(obj, status)  # a no-op unless the conditions said otherwise
                await self._collect_garbage()
                return self.poll_s
            self._in_flight += 1
            try:
                published = await publishing.publish(image, creds, self.ctx.nats, settings=self.publish_settings)
                await self._published_ok(obj, status, conds, image, published)
                self._published[key] = published.digest
            finally:
                self._in_flight -= 1
        except ArtifactError as exc:
            if exc.retryable:
                self._next_check.pop(key, None)  # the runner's backoff paces the retries
            await self._failed(obj, status, conds, image, exc)
            if exc.retryable:
                raise running.TemporaryError(str(exc)) from None
            raise running.PermanentError(str(exc)) from None
        await self._collect_garbage()
        return self.poll_s

    # ------------------------------------------------------------------ steps

    def _use_as_is(self, status: models.ArtifactStatus, conds: reconciling.Conditions, image: str) -> None:
        """file://, http(s)://, nats:// images: hosts read them where they are."""
        status.artifact_url, status.image = image, image
        status.digest = status.manifest_digest = status.last_pull_time = None
        status.size = None
        for type_, reason in (("Sync", "Synced"), ("Published", "Published"), ("Ready", "Ready")):
            conds.set(type_, "True", reason, f"artifact available at {image}")

    def _pull_secret(self, art: models.Artifact) -> client.Obj | None:
        ref = art.spec.image_pull_secret
        if ref is None:
            return None
        return self.ctx.informers.secrets.get(f"{art.metadata.namespace}/{ref.name}")

    def _credentials(self, art: models.Artifact, secret: client.Obj | None) -> publishing.Credentials | None:
        ref = art.spec.image_pull_secret
        if ref is None:
            return None
        if secret is None:
            raise ArtifactError(art.spec.image, f"imagePullSecret {art.metadata.namespace}/{ref.name} not found")
        return pull_secrets.credentials_from_secret(secret, art.spec.image)

    async def _still_current(
        self, status: models.ArtifactStatus, image: str, creds: publishing.Credentials | None
    ) -> bool:
        """True when what status describes was published from this image and the tag has not moved
        (one HEAD request and one object lookup)."""
        if status.image != image or not status.manifest_digest or not status.artifact_url:
            return False
        return await publishing.is_current(
            image, creds, self.ctx.nats, manifest_digest=status.manifest_digest, url=status.artifact_url,
            settings=self.publish_settings,
        )

    async def _published_ok(
        self, obj: client.Obj, status: models.ArtifactStatus, conds: reconciling.Conditions, image: str,
        published: publishing.Published,
    ) -> None:
        changed = published.url != status.artifact_url
        if changed or status.image != image or published.uploaded or status.last_pull_time is None:
            status.last_pull_time = conditions.now_rfc3339()
        status.artifact_url, status.image = published.url, image
        status.digest, status.size = published.digest, published.size
        status.manifest_digest = published.manifest_digest
        conds.set("Sync", "True", "Pulled", f"{image} resolves to {published.manifest_digest}")
        conds.set("Published", "True", "Published", f"{published.digest} ({published.size} bytes) stored")
        conds.set("Ready", "True", "Ready", f"artifact available at {published.url}")
        written = await self.write_status(obj, status)
        if changed:
            await self.ctx.recorder.record(written or obj, "Normal", "Published",
                                           f"{image} ({published.digest}) published at {published.url}")

    async def _failed(
        self, obj: client.Obj, status: models.ArtifactStatus, conds: reconciling.Conditions, image: str,
        exc: ArtifactError,
    ) -> None:
        reason = _reason(exc)
        conds.set("Sync", "False", reason, exc.reason)
        if status.image != image or not status.artifact_url:
            kept = f"; artifactUrl kept at {status.artifact_url}" if status.artifact_url else ""
            conds.set_from("Published", "False", reason, f"{image} not published: {exc.reason}{kept}")
        written = await self.write_status(obj, status)
        if written is not None:  # a new failure, not the same one again
            await self.ctx.recorder.record(written, "Warning", reason, f"{image}: {exc.reason}")

    # ------------------------------------------------------------------ garbage collection

    def _digests_in_use(self) -> set[str]:
        bucket = self.publish_settings.bucket
        infs = self.ctx.informers
        used = set(self._published.values())
        images: list[str] = []
        for art in infs.artifacts.list(None):
            st = art.get("status") or {}
            if st.get("digest"):
                used.add(str(st["digest"]))
            images.append(str(st.get("artifactUrl") or ""))
        for rs in infs.replicasets.list(None):
            images += images_of((((rs.get("spec") or {}).get("template") or {}).get("spec")) or {})
        for wl in infs.workloads.list(None):
            images += images_of(wl.get("spec") or {})
        for image in images:
            if image.startswith("nats://"):
                try:
                    ref = references.parse(image)
                except references.InvalidReference:
                    continue
                if isinstance(ref, references.NatsRef) and ref.bucket == bucket:
                    used.add(ref.digest)
        return used

    async def _collect_garbage(self) -> None:
        """Delete published objects nothing refers to any more (at most once per poll interval).
        Only when every namespace is watched: otherwise users elsewhere are invisible."""
        now = time.monotonic()
        if self.ctx.settings.namespace is not None or self._in_flight or now - self._last_gc < self.poll_s:
            return
        self._last_gc = now
        bucket = self.publish_settings.bucket
        try:
            stored = await publishing.list_published(self.ctx.nats, bucket=bucket)
            used = self._digests_in_use()
            for item in stored:
                if item.digest not in used and not self._in_flight:
                    await publishing.delete(item.digest, self.ctx.nats, bucket=bucket)
                    log.info("deleted unused artifact %s (from %s) from bucket %s", item.digest, item.source, bucket)
        except ArtifactError as exc:
            log.warning("artifact garbage collection skipped: %s", exc)


def _reason(exc: ArtifactError) -> str:
    """A condition reason naming the kind of failure."""
    text = exc.reason
    if "Secret" in text or "imagePullSecret" in text:
        return "PullSecretInvalid"
    if "denied" in text or "credentials" in text:
        return "Unauthorized"
    if "not found" in text:
        return "NotFound"
    if "digest" in text:
        return "DigestMismatch"
    if exc.retryable:
        return "RegistryUnavailable"
    return "PullFailed"
