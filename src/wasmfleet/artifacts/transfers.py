"""Push and pull wasm components as OCI artifacts (what `wasmfleet push` / `wasmfleet pull` do).

The layout is the CNCF wasm OCI artifact one that wash and wkg write:
- manifest  application/vnd.oci.image.manifest.v1+json, with org.opencontainers.image.* annotations
  (`created` always, others as the caller gives them);
- config    application/vnd.wasm.config.v0+json: {"created", "architecture": "wasm", "os": "wasip2",
  "layerDigests": [<layer digest>]};
- one layer application/wasm holding the component bytes.
Pulls also take the older application/vnd.module.wasm.content.layer.v1+wasm layer, and verify the
layer's bytes against its digest before the file appears.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import aiohttp

from wasmfleet.artifacts import cache, references, wasm_kinds
from wasmfleet.artifacts.errors import ArtifactError
from wasmfleet.artifacts.oci import OCI_MANIFEST, Credentials, Layer, RegistryClient, check

WASM_LAYER = "application/wasm"
LEGACY_WASM_LAYER = "application/vnd.module.wasm.content.layer.v1+wasm"
WASM_CONFIG = "application/vnd.wasm.config.v0+json"
CREATED = "org.opencontainers.image.created"


@dataclass(frozen=True)
class Pushed:
    reference: str
    manifest_digest: str
    layer_digest: str
    size: int


def config_blob(layer_digest: str, created: str) -> bytes:
    return json.dumps(
        {"created": created, "architecture": "wasm", "os": "wasip2", "layerDigests": [layer_digest]},
        separators=(",", ":"),
    ).encode()


def manifest_blob(
    config: bytes, layer: bytes, *, annotations: dict[str, str], layer_media_type: str = WASM_LAYER
) -> bytes:
    return json.dumps({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": WASM_CONFIG, "digest": _sha(config), "size": len(config)},
        "layers": [{"mediaType": layer_media_type, "digest": _sha(layer), "size": len(layer)}],
        "annotations": annotations,
    }, separators=(",", ":")).encode()


async def push_component(
    registry: RegistryClient,
    ref: references.OciRef,
    wasm: bytes,
    credentials: Credentials | None,
    *,
    annotations: dict[str, str] | None = None,
) -> Pushed:
    """Push `wasm` (must be a component) as `ref` (a tag; `latest` when none)."""
    wasm_kinds.check_component(str(ref), wasm[: wasm_kinds.HEADER_BYTES])
    if ref.digest:
        raise ArtifactError(str(ref), "push to a tag, not a digest")
    created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    config = config_blob(_sha(wasm), created)
    manifest = manifest_blob(config, wasm, annotations={CREATED: created, **(annotations or {})})
    await push_blob(registry, ref, config, credentials)
    await push_blob(registry, ref, wasm, credentials)
    digest = await push_manifest(registry, ref, manifest, OCI_MANIFEST, credentials)
    return Pushed(reference=str(ref), manifest_digest=digest, layer_digest=_sha(wasm), size=len(wasm))


async def push_blob(
    registry: RegistryClient, ref: references.OciRef, data: bytes, credentials: Credentials | None
) -> str:
    """Upload one blob (monolithic POST + PUT), skipped when the registry already has it."""
    digest = _sha(data)
    base = registry.base_url(ref)
    async with await registry.request("HEAD", ref, f"{base}/blobs/{digest}", credentials, push=True) as response:
        if response.status == 200:
            return digest
    async with await registry.request("POST", ref, f"{base}/blobs/uploads/", credentials, push=True) as response:
        if response.status != 202:
            await check(ref, response, "blob upload")
            raise ArtifactError(str(ref), f"registry answered {response.status} to a blob upload")
        location = response.headers.get("Location", "")
    url = _absolute(base, location)
    url += ("&" if "?" in url else "?") + f"digest={digest}"
    async with await registry.request(
        "PUT", ref, url, credentials, push=True, data=data, content_type="application/octet-stream"
    ) as response:
        if response.status != 201:
            await check(ref, response, f"blob {digest}")
            raise ArtifactError(str(ref), f"registry answered {response.status} to blob {digest}")
    return digest


async def push_manifest(
    registry: RegistryClient, ref: references.OciRef, manifest: bytes, media_type: str,
    credentials: Credentials | None,
) -> str:
    url = f"{registry.base_url(ref)}/manifests/{ref.tag or 'latest'}"
    async with await registry.request(
        "PUT", ref, url, credentials, push=True, data=manifest, content_type=media_type
    ) as response:
        if response.status != 201:
            await check(ref, response, "manifest")
            raise ArtifactError(str(ref), f"registry answered {response.status} to the manifest")
    return _sha(manifest)


async def pull_component(
    registry: RegistryClient, ref: references.OciRef, credentials: Credentials | None, target: Path,
    *, max_bytes: int = 512 << 20,
) -> Layer:
    """Download the wasm layer of `ref` to `target`; the file appears only once its digest checks out."""
    resolved = await registry.resolve_manifest(ref, credentials, strict=True)
    work = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix=".wasmfleet-pull-", dir=target.parent))
    try:
        writer = cache.BlobCache(work).writer()
        try:
            await registry.download(ref, resolved.layer, credentials, writer, max_bytes=max_bytes)
            digest = await asyncio.to_thread(writer.commit, resolved.layer.digest)
        except cache.DigestMismatch as exc:
            raise ArtifactError(str(ref), f"layer digest mismatch: {exc}", retryable=True) from None
        except aiohttp.ClientError as exc:
            writer.abort()
            raise ArtifactError(str(ref), f"layer download failed: {exc}", retryable=True) from exc
        except BaseException:
            writer.abort()
            raise
        await asyncio.to_thread(os.replace, cache.BlobCache(work).blob_path(digest), target)
    finally:
        await asyncio.to_thread(shutil.rmtree, work, True)
    return resolved.layer


def _absolute(base: str, location: str) -> str:
    if location.startswith(("http://", "https://")):
        return location
    scheme_host = base.split("/v2/", 1)[0]
    return scheme_host + location


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()
