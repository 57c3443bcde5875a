"""Publishing components to the JetStream Object Store (wasmfleet.artifacts.publishing), for the
Artifact controller, against a real docker-registry and a real nats-server.

Checks: resolve() returns the manifest digest of a tag and its wasm layer, and a re-pushed tag
resolves to new digests; publish() pulls once, stores the object under its digest in the
`wasmfleet-artifacts` bucket and returns `nats://wasmfleet-artifacts/sha256:<hex>`, the stored bytes
equal the component, and a second publish downloads nothing (uploaded False); a re-pushed tag
publishes a new object at a new URL; a host Fetcher reads the nats:// URL over its NATS connection,
verifies it and caches it, then serves it from the cache with nats-server stopped; delete() removes
an object (a later fetch is a non-retryable "not in the object store"), a second delete is False and
list_published() lists what is there; basic-auth registries need credentials (missing: not
retryable, wrong: denied; a kubernetes.io/dockerconfigjson Secret found by registry host works); registry trouble is a
typed error with `retryable`: unreachable (True),
unknown tag (False), manifest over the size bound (False), a layer whose bytes do not match their
digest (served through a tampering proxy in front of the real registry: True, and nothing is
stored); non-components are refused with the cause named: a core module, a non-wasm layer media
type, wasm media type with non-wasm bytes, an index with no wasm layer; is_current() is True while
the tag and the object are unchanged (by a HEAD request) and False after a re-push or a deleted object.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import nats
import pytest
import tampering_registry

from wasmfleet.artifacts import object_store, oci, publishing, pull_secrets, references, transfers
from wasmfleet.artifacts.errors import ArtifactError
from wasmfleet.artifacts.fetching import ArtifactSettings, Fetcher
from wasmfleet.artifacts.oci import Credentials
from wasmfleet.testing.nats import NatsServer, nats_server
from wasmfleet.testing.oci_registry_server import Registry, push_wasm, running_registry

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.components.build import build_component

CORE_MODULE = b"\0asm\x01\0\0\0"  # the smallest valid core module: magic + version 1, no sections
V2 = b"\0asm\r\0\x01\0" + b"second version" * 500  # component header; bytes only stored, never run


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def component() -> bytes:
    return build_component("hello-wat").read_bytes()


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    with running_registry(tmp_path_factory.mktemp("registry")) as reg:
        yield reg


@pytest.fixture
def bus(tmp_path: Path) -> Iterator[NatsServer]:
    with nats_server(tmp_path / "nats") as server:
        yield server


@pytest.fixture
async def nc(bus: NatsServer) -> AsyncIterator[nats.aio.client.Client]:
    client = await nats.connect(bus.url, max_reconnect_attempts=0)
    try:
        yield client
    finally:
        await client.close()


async def test_resolve_follows_a_tag_to_new_digests(registry: Registry, component: bytes) -> None:
    push_wasm(registry, "pub/resolve", "1", component)
    first = await publishing.resolve(f"{registry.host}/pub/resolve:1", None)
    assert first.layer.digest == sha(component) and first.layer.size == len(component)
    assert first.layer.media_type == "application/wasm"
    assert first.manifest_digest.startswith("sha256:")
    push_wasm(registry, "pub/resolve", "1", V2)
    second = await publishing.resolve(f"{registry.host}/pub/resolve:1", None)
    assert second.layer.digest == sha(V2)
    assert second.manifest_digest != first.manifest_digest


async def test_publish_stores_once_and_hosts_fetch_the_nats_url(
    registry: Registry, component: bytes, nc: nats.aio.client.Client, bus: NatsServer, tmp_path: Path
) -> None:
    push_wasm(registry, "pub/hello", "1", component)
    image = f"{registry.host}/pub/hello:1"
    published = await publishing.publish(image, None, nc)
    assert published.url == f"nats://wasmfleet-artifacts/{sha(component)}"
    assert (published.digest, published.size, published.uploaded) == (sha(component), len(component), True)
    store = await nc.jetstream().object_store("wasmfleet-artifacts")
    assert (await store.get(sha(component))).data == component
    again = await publishing.publish(image, None, nc)
    assert again.url == published.url and not again.uploaded

    push_wasm(registry, "pub/hello", "1", V2)  # the tag is re-pushed
    moved = await publishing.publish(image, None, nc)
    assert moved.url == f"nats://wasmfleet-artifacts/{sha(V2)}" and moved.uploaded
    assert {o.digest for o in await publishing.list_published(nc)} == {sha(component), sha(V2)}
    assert {o.source for o in await publishing.list_published(nc)} == {str(references.parse(image))}

    async with Fetcher(ArtifactSettings(cache_dir=tmp_path / "cache")) as fetcher:
        fetcher.attach_nats(nc)
        got = await fetcher.fetch(published.url)
        assert got.downloaded and got.digest == sha(component) and got.path.read_bytes() == component
        bus.stop()  # a cached digest never needs NATS again
        cached = await fetcher.fetch(published.url)
        assert not cached.downloaded and cached.path == got.path


async def test_delete_removes_an_object(
    registry: Registry, component: bytes, nc: nats.aio.client.Client, tmp_path: Path
) -> None:
    push_wasm(registry, "pub/gc", "1", component)
    published = await publishing.publish(f"{registry.host}/pub/gc:1", None, nc)
    assert await publishing.delete(published.digest, nc)
    assert not await publishing.delete(published.digest, nc)
    assert await publishing.list_published(nc) == []
    async with Fetcher(ArtifactSettings(cache_dir=tmp_path / "cache")) as fetcher:
        fetcher.attach_nats(nc)
        with pytest.raises(ArtifactError, match="not in the object store") as info:
            await fetcher.fetch(published.url)
        assert not info.value.retryable
    with pytest.raises(ArtifactError, match="sha256"):
        await publishing.delete("latest", nc)


async def test_a_fetch_without_nats_or_bucket_is_a_clear_error(nc: nats.aio.client.Client, tmp_path: Path) -> None:
    url = object_store.url(sha(b"absent"))
    async with Fetcher(ArtifactSettings(cache_dir=tmp_path / "cache")) as fetcher:
        with pytest.raises(ArtifactError, match="no NATS connection") as no_nats:
            await fetcher.fetch(url)
        assert no_nats.value.retryable
        fetcher.attach_nats(nc)
        with pytest.raises(ArtifactError, match="bucket wasmfleet-artifacts does not exist") as no_bucket:
            await fetcher.fetch(url)
        assert not no_bucket.value.retryable
        with pytest.raises(ArtifactError, match="named by its digest"):
            await fetcher.fetch("nats://wasmfleet-artifacts/hello")


async def test_private_registries_need_the_pull_secret(
    tmp_path: Path, component: bytes, nc: nats.aio.client.Client
) -> None:
    with running_registry(tmp_path / "private", users={"alice": "s3cret"}) as reg:
        push_wasm(reg, "team/app", "1", component, auth=("alice", "s3cret"))
        image = f"{reg.host}/team/app:1"
        with pytest.raises(ArtifactError, match="requires credentials") as missing:
            await publishing.publish(image, None, nc)
        assert not missing.value.retryable
        with pytest.raises(ArtifactError, match="denied") as wrong:
            await publishing.resolve(image, Credentials("alice", "wrong"))
        assert not wrong.value.retryable and "wrong" not in str(wrong.value)
        published = await publishing.publish(image, Credentials("alice", "s3cret"), nc)
        assert published.digest == sha(component)
        config = {"auths": {f"http://{reg.host}/v2/": {"auth": base64.b64encode(b"alice:s3cret").decode()}}}
        secret = {"metadata": {"name": "pull", "namespace": "apps"}, "type": "kubernetes.io/dockerconfigjson",
                  "data": {".dockerconfigjson": base64.b64encode(json.dumps(config).encode()).decode()}}
        creds = pull_secrets.credentials_from_secret(secret, image)
        assert (await publishing.resolve(image, creds)).layer.digest == sha(component)


async def test_registry_trouble_says_whether_to_retry(
    registry: Registry, component: bytes, nc: nats.aio.client.Client
) -> None:
    with pytest.raises(ArtifactError, match="unreachable") as down:
        await publishing.publish("127.0.0.1:1/pub/hello:1", None, nc)
    assert down.value.retryable
    with pytest.raises(ArtifactError, match="not found") as unknown:
        await publishing.publish(f"{registry.host}/pub/absent:1", None, nc)
    assert not unknown.value.retryable
    push_wasm(registry, "pub/big", "1", component)
    small = publishing.PublishSettings(max_manifest_bytes=64)
    with pytest.raises(ArtifactError, match="64-byte limit") as big:
        await publishing.resolve(f"{registry.host}/pub/big:1", None, settings=small)
    assert not big.value.retryable
    with pytest.raises(ArtifactError, match="not an OCI registry reference"):
        await publishing.publish("file:///tmp/x.wasm", None, nc)


@pytest.fixture
async def tampering_proxy(registry: Registry) -> AsyncIterator[str]:
    async with tampering_registry.tampering_proxy(registry.url) as host:
        yield host


async def test_a_layer_that_does_not_match_its_digest_is_never_stored(
    registry: Registry, component: bytes, nc: nats.aio.client.Client, tampering_proxy: str
) -> None:
    push_wasm(registry, "pub/tampered", "1", component)
    with pytest.raises(ArtifactError, match="digest mismatch") as info:
        await publishing.publish(f"{tampering_proxy}/pub/tampered:1", None, nc)
    assert info.value.retryable
    assert await publishing.list_published(nc) == []


async def _push_raw(registry: Registry, repo: str, tag: str, layer: bytes, layer_type: str) -> str:
    """Push a one-layer manifest with any layer media type (returns the manifest digest)."""
    ref = references.OciRef(registry=registry.host, repository=repo, tag=tag)
    async with aiohttp.ClientSession() as session:
        client = oci.RegistryClient(session, insecure_registries=("127.0.0.1",))
        config = transfers.config_blob(sha(layer), "2026-01-01T00:00:00Z")
        await transfers.push_blob(client, ref, config, None)
        await transfers.push_blob(client, ref, layer, None)
        manifest = transfers.manifest_blob(config, layer, annotations={}, layer_media_type=layer_type)
        return await transfers.push_manifest(client, ref, manifest, oci.OCI_MANIFEST, None)


async def test_images_that_are_not_components_are_refused(
    registry: Registry, nc: nats.aio.client.Client
) -> None:
    push_wasm(registry, "bad/core", "1", CORE_MODULE)
    with pytest.raises(ArtifactError, match="core wasm module, not a component") as core:
        await publishing.publish(f"{registry.host}/bad/core:1", None, nc)
    assert not core.value.retryable

    await _push_raw(registry, "bad/tar", "1", b"\x1f\x8b not wasm", "application/vnd.oci.image.layer.v1.tar+gzip")
    with pytest.raises(ArtifactError, match=r"no wasm layer in the manifest \(layers: application/vnd.oci"):
        await publishing.publish(f"{registry.host}/bad/tar:1", None, nc)

    push_wasm(registry, "bad/text", "1", b"hello, I am text")
    with pytest.raises(ArtifactError, match="not wasm"):
        await publishing.publish(f"{registry.host}/bad/text:1", None, nc)

    child = await _push_raw(registry, "bad/index", "linux", b"\x1f\x8b tar", "application/vnd.oci.image.layer.v1.tar")
    index = json.dumps({
        "schemaVersion": 2, "mediaType": oci.OCI_INDEX,
        "manifests": [{"mediaType": oci.OCI_MANIFEST, "digest": child, "size": 1,
                       "platform": {"architecture": "amd64", "os": "linux"}}],
    }).encode()
    ref = references.OciRef(registry=registry.host, repository="bad/index", tag="1")
    async with aiohttp.ClientSession() as session:
        client = oci.RegistryClient(session, insecure_registries=("127.0.0.1",))
        await transfers.push_manifest(client, ref, index, oci.OCI_INDEX, None)
    with pytest.raises(ArtifactError, match="image index has no manifest with a wasm layer"):
        await publishing.publish(f"{registry.host}/bad/index:1", None, nc)
    assert await publishing.list_published(nc) == []


async def test_is_current_detects_a_moved_tag_and_a_lost_object(
    registry: Registry, component: bytes, nc: nats.aio.client.Client
) -> None:
    push_wasm(registry, "pub/poll", "1", component)
    image = f"{registry.host}/pub/poll:1"
    published = await publishing.publish(image, None, nc)
    known = {"manifest_digest": published.manifest_digest, "url": published.url}
    assert await publishing.is_current(image, None, nc, **known)
    push_wasm(registry, "pub/poll", "1", V2)
    assert not await publishing.is_current(image, None, nc, **known)
    moved = await publishing.publish(image, None, nc)
    known = {"manifest_digest": moved.manifest_digest, "url": moved.url}
    assert await publishing.is_current(image, None, nc, **known)
    await publishing.delete(moved.digest, nc)
    assert not await publishing.is_current(image, None, nc, **known)
    with pytest.raises(ArtifactError, match="not found"):
        await publishing.is_current(f"{registry.host}/pub/absent:1", None, nc, **known)
