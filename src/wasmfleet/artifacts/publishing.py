"""What the Artifact controller calls: resolve a tag, publish a component to the Object Store, GC it.

    resolved = await publishing.resolve("ghcr.io/acme/hello:1", creds)         # one manifest GET
    published = await publishing.publish("ghcr.io/acme/hello:1", creds, nc)    # pull once, verify, store
    published.url  -> "nats://wasmfleet-artifacts/sha256:<hex>"  (status.artifactUrl)
    await publishing.delete(old_digest, nc)                                    # GC an unused digest

`is_current(ref, auth, nc, manifest_digest=, url=)` is a cheaper poll still: one HEAD request and one
object lookup. `publish` is idempotent and cheap when nothing changed: it resolves the tag (one manifest request),
finds the object already stored under the layer digest, and returns without downloading. Calling it
on every reconcile therefore both notices a re-pushed tag (a new digest, so a new URL) and repairs a
bucket that lost the object. Everything it refuses or fails on is an ArtifactError whose `retryable`
says whether asking again can help: unreachable registry, timeouts, 5xx, a corrupt download -> True;
401/403, unknown tag, oversized manifest, not a component -> False.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from wasmfleet.artifacts import cache, object_store, oci, references, wasm_kinds
from wasmfleet.artifacts.errors import ArtifactError
from wasmfleet.artifacts.oci import Credentials, Resolved

__all__ = [
    "ArtifactError", "Credentials", "PublishSettings", "Published", "Resolved",
    "delete", "is_current", "is_registry_reference", "list_published", "publish", "resolve",
]


@dataclass(frozen=True)
class PublishSettings:
    bucket: str = object_store.BUCKET
    """Object Store bucket holding every published component (created on first publish)."""

    replicas: int = 1
    """JetStream replicas of the bucket when it is created (1: a single nats-server)."""

    insecure_registries: tuple[str, ...] = ("localhost", "127.0.0.1", "::1")
    """Registries spoken to over plain HTTP: loopback only, as for hosts."""

    timeout_s: float = 300.0
    """Bound of one registry pull (manifest + layer): 5 min covers 100 MB on a slow link."""

    connect_timeout_s: float = 10.0
    """Bound of connecting to the registry, so an outage fails fast (and retryably)."""

    max_bytes: int = 512 << 20
    """Largest component accepted (512 MB), as on hosts."""

    max_manifest_bytes: int = 4 << 20
    """Largest manifest read (4 MB, the limit distribution registries apply themselves)."""

    work_dir: Path = field(default_factory=lambda: Path(tempfile.gettempdir()))
    """Where a pulled layer waits (verified) before its upload; removed afterwards."""


@dataclass(frozen=True)
class Published:
    url: str
    """`nats://<bucket>/sha256:<hex>`: what status.artifactUrl should say."""

    digest: str
    """sha256 of the component bytes (the layer digest)."""

    size: int
    manifest_digest: str
    """Digest of the manifest the tag pointed at when published."""

    media_type: str
    """The layer's media type in the registry."""

    uploaded: bool
    """False when the object was already in the bucket (nothing downloaded)."""


def is_registry_reference(image: str) -> bool:
    """True for an OCI registry reference; file://, http(s):// and nats:// images are used as they are."""
    try:
        return isinstance(references.parse(image), references.OciRef)
    except references.InvalidReference:
        return False


async def resolve(
    ref: str, auth: Credentials | None, *, settings: PublishSettings = PublishSettings()
) -> Resolved:
    """The manifest digest `ref` points at now, and its wasm layer (digest, size, media type)."""
    oci_ref = _oci_ref(ref)
    async with _registry(settings) as registry:
        return await _resolve(registry, oci_ref, auth)


async def publish(
    ref: str, auth: Credentials | None, nc: Any, *, settings: PublishSettings = PublishSettings()
) -> Published:
    """Make the component `ref` names available at a nats:// URL (see the module docstring)."""
    oci_ref = _oci_ref(ref)
    async with _registry(settings) as registry:
        resolved = await _resolve(registry, oci_ref, auth)
        layer = resolved.layer
        existing = await object_store.stat(nc, references.NatsRef(settings.bucket, layer.digest))
        if existing is not None:
            return _published(settings, resolved, existing.size, uploaded=False)
        work = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="wasmfleet-publish-", dir=settings.work_dir))
        try:
            path = await _pull_layer(registry, oci_ref, resolved.layer, auth, cache.BlobCache(work), settings)
            stored = await object_store.upload(
                nc, layer.digest, path, source=str(oci_ref), media_type=layer.media_type,
                bucket=settings.bucket, replicas=settings.replicas,
            )
        finally:
            await asyncio.to_thread(shutil.rmtree, work, True)
    return _published(settings, resolved, stored.size, uploaded=True)


async def is_current(
    ref: str, auth: Credentials | None, nc: Any, *, manifest_digest: str, url: str,
    settings: PublishSettings = PublishSettings(),
) -> bool:
    """True when `ref` still points at `manifest_digest` (one HEAD request) and the object behind
    `url` is still stored: then a reconcile has nothing to publish. A cheaper check than `publish`
    for frequent polling; False means "call publish"."""
    oci_ref = _oci_ref(ref)
    try:
        stored = references.parse(url)
    except references.InvalidReference:
        return False
    if not isinstance(stored, references.NatsRef):
        return False
    async with _registry(settings) as registry:
        try:
            current = await registry.head_digest(oci_ref, auth)
        except TimeoutError:
            raise ArtifactError(ref, f"registry {oci_ref.api_host} timed out", retryable=True) from None
    if current != manifest_digest:
        return False
    return await object_store.stat(nc, stored) is not None


async def delete(digest: str, nc: Any, *, bucket: str = object_store.BUCKET) -> bool:
    """Remove a published component (garbage collection); False when it was not there."""
    try:
        references.parse(f"nats://{bucket}/{digest}")  # the digest's spelling, before asking NATS
    except references.InvalidReference as exc:
        raise ArtifactError(digest, str(exc).split(": ", 1)[-1]) from None
    return await object_store.remove(nc, digest, bucket=bucket)


async def list_published(nc: Any, *, bucket: str = object_store.BUCKET) -> list[object_store.StoredObject]:
    """Every component in the bucket, for garbage collection against the Artifacts still in use."""
    return await object_store.list_objects(nc, bucket=bucket)


def _oci_ref(ref: str) -> references.OciRef:
    try:
        parsed = references.parse(ref)
    except references.InvalidReference as exc:
        raise ArtifactError(ref, str(exc).removeprefix(f"{ref}: ")) from None
    if not isinstance(parsed, references.OciRef):
        raise ArtifactError(ref, "not an OCI registry reference (only registry images are published)")
    return parsed


@asynccontextmanager
async def _registry(settings: PublishSettings) -> AsyncIterator[oci.RegistryClient]:
    timeout = aiohttp.ClientTimeout(total=settings.timeout_s, connect=settings.connect_timeout_s)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        yield oci.RegistryClient(
            session, insecure_registries=settings.insecure_registries, max_manifest_bytes=settings.max_manifest_bytes
        )


async def _resolve(registry: oci.RegistryClient, ref: references.OciRef, auth: Credentials | None) -> Resolved:
    try:
        return await registry.resolve_manifest(ref, auth, strict=True)
    except TimeoutError:
        raise ArtifactError(str(ref), f"registry {ref.api_host} timed out", retryable=True) from None


async def _pull_layer(
    registry: oci.RegistryClient,
    ref: references.OciRef,
    layer: oci.Layer,
    auth: Credentials | None,
    blobs: cache.BlobCache,
    settings: PublishSettings,
) -> Path:
    """Download the layer into `blobs`, verified against its digest, and check it is a component."""
    writer = blobs.writer()
    try:
        await registry.download(ref, layer, auth, writer, max_bytes=settings.max_bytes)
        digest = await asyncio.to_thread(writer.commit, layer.digest)
    except cache.DigestMismatch as exc:
        raise ArtifactError(str(ref), f"layer digest mismatch: {exc}", retryable=True) from None
    except TimeoutError:
        writer.abort()
        raise ArtifactError(str(ref), f"pull timed out after {settings.timeout_s:g}s", retryable=True) from None
    except aiohttp.ClientError as exc:
        writer.abort()
        raise ArtifactError(str(ref), f"layer download failed: {exc}", retryable=True) from exc
    except BaseException:
        writer.abort()
        raise
    path = blobs.blob_path(digest)
    header = await asyncio.to_thread(_head, path)
    wasm_kinds.check_component(str(ref), header)
    return path


def _head(path: Path) -> bytes:
    with open(path, "rb") as handle:
        return handle.read(wasm_kinds.HEADER_BYTES)


def _published(settings: PublishSettings, resolved: Resolved, size: int, *, uploaded: bool) -> Published:
    return Published(
        url=object_store.url(resolved.layer.digest, settings.bucket),
        digest=resolved.layer.digest,
        size=size,
        manifest_digest=resolved.manifest_digest,
        media_type=resolved.layer.media_type,
        uploaded=uploaded,
    )
