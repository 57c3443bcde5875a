"""Components in a JetStream Object Store: `nats://<bucket>/sha256:<hex>` URLs, upload, download, delete.

One bucket (`wasmfleet-artifacts` by default) holds every published component, each object named by
the sha256 digest of its bytes. Names never change meaning, so a host that already caches a digest
never asks again, and a re-pushed tag becomes a NEW object (a new URL, which rolls deployments out).

Why an upload is never seen half-done: JetStream's object store writes the chunks first, under a
fresh random subject, and the object's metadata (name, size, digest) last, in one message. A reader
looks the metadata up first, so until that last message lands the object does not exist; an upload
that fails midway purges its chunks. The publisher also verifies the registry's digest before it
uploads, and every download verifies the bytes against the digest in the URL.

nats-py's exceptions are mapped to ArtifactError here and nowhere else.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats.errors
import nats.js.api
import nats.js.errors

from wasmfleet.artifacts import cache, references
from wasmfleet.artifacts.errors import ArtifactError
from wasmfleet.bus import permissions

BUCKET = permissions.ARTIFACTS_BUCKET
"""The bucket `wasmfleet up`'s NATS permissions (and the chart's) open to the operator and hosts."""
SOURCE_HEADER = "Wasmfleet-Source"
MEDIA_TYPE_HEADER = "Wasmfleet-Media-Type"


def url(digest: str, bucket: str = BUCKET) -> str:
    """The image URL of a published component (`nats://wasmfleet-artifacts/sha256:<hex>`)."""
    return str(references.NatsRef(bucket=bucket, digest=digest))


@dataclass(frozen=True)
class StoredObject:
    digest: str
    size: int
    source: str
    """The image reference it was published from ("" if unknown)."""


@contextlib.asynccontextmanager
async def _mapped(what: str, *, not_found: str | None = None) -> AsyncIterator[None]:
    """Turn nats-py's errors into one-line ArtifactErrors for `what` (an image or URL)."""
    try:
        yield
    except (nats.js.errors.ObjectNotFoundError, nats.js.errors.BucketNotFoundError) as exc:
        raise ArtifactError(what, not_found or "not in the object store", retryable=False) from exc
    except nats.js.errors.DigestMismatchError as exc:
        raise ArtifactError(what, "object store returned bytes that do not match the object's digest",
                            retryable=True) from exc
    except nats.errors.NoRespondersError as exc:
        raise ArtifactError(what, "JetStream is not available on this NATS server", retryable=True) from exc
    except (nats.errors.TimeoutError, TimeoutError) as exc:
        raise ArtifactError(what, "object store timed out", retryable=True) from exc
    except (nats.errors.ConnectionClosedError, nats.errors.ConnectionReconnectingError,
            nats.errors.OutboundBufferLimitError, nats.errors.StaleConnectionError) as exc:
        raise ArtifactError(what, f"NATS connection unavailable ({type(exc).__name__})", retryable=True) from exc
    except nats.js.errors.APIError as exc:
        raise ArtifactError(what, f"JetStream refused: {exc.description or exc}",
                            retryable=(exc.code or 0) >= 500) from exc
    except nats.errors.Error as exc:
        raise ArtifactError(what, f"object store error: {exc}", retryable=True) from exc


async def open_bucket(nc: Any, bucket: str = BUCKET, *, create: bool = False, replicas: int = 1) -> Any:
    """The bucket's nats-py ObjectStore; created (file storage) when `create` and missing."""
    js = nc.jetstream()
    async with _mapped(f"nats://{bucket}", not_found=f"object store bucket {bucket} does not exist"):
        try:
            return await js.object_store(bucket)
        except nats.js.errors.BucketNotFoundError:
            if not create:
                raise
        config = nats.js.api.ObjectStoreConfig(
            description="wasmfleet: published wasm components, named by digest",
            storage=nats.js.api.StorageType.FILE,
            replicas=replicas,
        )
        return await js.create_object_store(bucket, config=config)


async def stat(nc: Any, ref: references.NatsRef) -> StoredObject | None:
    """The object's size and source, None when absent (never a partial upload: see module doc)."""
    async with _mapped(str(ref)):
        try:
            store = await nc.jetstream().object_store(ref.bucket)
            info = await store.get_info(ref.digest)
        except (nats.js.errors.ObjectNotFoundError, nats.js.errors.BucketNotFoundError):
            return None
    return _stored(info)


async def download(
    nc: Any, ref: references.NatsRef, writer: cache.BlobWriter, *, max_bytes: int, batch: int = 64
) -> None:
    """Stream the object into `writer` (the caller commits it against ref.digest).

    Reads the chunks with a pull consumer, `batch` chunks (128 KB each) per request, rather than
    nats-py's ObjectStore.get: its ordered push consumer delivered a 13 MB object at ~16 MB/s here,
    the pull consumer at ~300 MB/s (bench/artifact_bench.py). The layout read is the Object Store's
    own (stream OBJ_<bucket>, chunks on $O.<bucket>.C.<nuid>; NATS ADR-20), not a private detail."""
    store = await open_bucket(nc, ref.bucket)
    async with _mapped(str(ref)):
        info = await store.get_info(ref.digest)
        if info.is_link():
            raise ArtifactError(str(ref), "object is a link; only stored components are fetched")
        if (info.size or 0) > max_bytes:
            raise ArtifactError(str(ref), f"object of {info.size} bytes exceeds the {max_bytes}-byte limit")
        chunks = int(info.chunks or 0)
        if chunks == 0:
            return
        config = nats.js.api.ConsumerConfig(
            ack_policy=nats.js.api.AckPolicy.NONE,
            deliver_policy=nats.js.api.DeliverPolicy.ALL,
            inactive_threshold=30.0,  # the server drops the consumer if this host vanishes mid-read
            mem_storage=True,
            num_replicas=1,
        )
        subscription = await nc.jetstream().pull_subscribe(
            f"$O.{ref.bucket}.C.{info.nuid}", stream=f"OBJ_{ref.bucket}", config=config
        )
        try:
            received = 0
            while received < chunks:
                for msg in await subscription.fetch(batch=min(batch, chunks - received), timeout=30):
                    writer.write(msg.data)
                    received += 1
                if writer.size > max_bytes:
                    raise ArtifactError(str(ref), f"object larger than the {max_bytes}-byte limit")
        finally:
            with contextlib.suppress(nats.errors.Error):
                await subscription.unsubscribe()


async def upload(
    nc: Any, digest: str, path: Path, *, source: str, media_type: str, bucket: str = BUCKET, replicas: int = 1
) -> StoredObject:
    """Store the file (already verified to hash to `digest`) as object `digest`; idempotent."""
    store = await open_bucket(nc, bucket, create=True, replicas=replicas)
    ref = references.NatsRef(bucket=bucket, digest=digest)
    async with _mapped(str(ref)):
        with contextlib.suppress(nats.js.errors.ObjectNotFoundError):
            existing = await store.get_info(digest)
            if existing.digest == _nats_digest(digest):
                return _stored(existing)  # already published (same bytes: same digest)
        meta = nats.js.api.ObjectMeta(
            name=digest,
            description=f"wasm component from {source}",
            headers={SOURCE_HEADER: [source], MEDIA_TYPE_HEADER: [media_type]},
        )
        handle = await asyncio.to_thread(open, path, "rb")
        try:
            info = await store.put(digest, handle, meta=meta)
        finally:
            await asyncio.to_thread(handle.close)
    return _stored(info)


async def remove(nc: Any, digest: str, *, bucket: str = BUCKET) -> bool:
    """Delete object `digest`; False when there was none (or no bucket)."""
    ref = references.NatsRef(bucket=bucket, digest=digest)
    async with _mapped(str(ref)):
        try:
            store = await nc.jetstream().object_store(bucket)
            await store.delete(digest)
        except (nats.js.errors.ObjectNotFoundError, nats.js.errors.BucketNotFoundError,
                nats.js.errors.ObjectDeletedError):
            return False
    return True


async def list_objects(nc: Any, *, bucket: str = BUCKET) -> list[StoredObject]:
    """Every published component in the bucket (none when the bucket does not exist yet)."""
    async with _mapped(f"nats://{bucket}"):
        try:
            store = await nc.jetstream().object_store(bucket)
            infos = await store.list()
        except (nats.js.errors.BucketNotFoundError, nats.js.errors.NotFoundError):
            return []
    return [_stored(info) for info in infos if not info.deleted]


def _nats_digest(digest: str) -> str:
    """The object store's spelling of a sha256 digest: `SHA-256=<base64url of the raw hash>`."""
    return "SHA-256=" + base64.urlsafe_b64encode(bytes.fromhex(digest.removeprefix("sha256:"))).decode()


def _stored(info: Any) -> StoredObject:
    headers = info.headers or {}
    source = headers.get(SOURCE_HEADER) or [""]
    return StoredObject(
        digest=str(info.name), size=int(info.size or 0), source=str(source[0] if isinstance(source, list) else source)
    )
