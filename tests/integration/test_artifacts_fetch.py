"""Component fetching (wasmfleet.artifacts) against real sources.

Checks: file:// and plain paths are read in place and a missing file is a one-line error; http://
downloads are cached by digest and imagePullPolicy decides whether the server is asked again
(IfNotPresent: no, Always: yes, Never: only the cache); an HTTP error is a one-line error; OCI pulls
from a real docker-registry work anonymously, with htpasswd basic auth and with bearer tokens from a
token service (missing or wrong credentials fail with a clear reason; a token is reused); a
re-pushed tag is picked up under Always and not under IfNotPresent; a digest-pinned reference works;
concurrent fetches share one download; the cache evicts the least recently used components.
"""

from __future__ import annotations

import asyncio
import hashlib
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiohttp import web

from wasmfleet.artifacts.fetching import ArtifactError, ArtifactSettings, Credentials, Fetcher, PullPolicy
from wasmfleet.testing.oci_registry_server import Registry, push_wasm, running_registry

BODY_V1 = b"\0asm\r\0\x01\0" + b"version one" * 1000
BODY_V2 = b"\0asm\r\0\x01\0" + b"version two" * 1000


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture
async def fetcher(tmp_path: Path) -> AsyncIterator[Fetcher]:
    async with Fetcher(ArtifactSettings(cache_dir=tmp_path / "cache")) as f:
        yield f


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    with running_registry(tmp_path_factory.mktemp("registry")) as reg:
        yield reg


@pytest.fixture(scope="module")
def private_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    with running_registry(tmp_path_factory.mktemp("private"), users={"alice": "s3cret"}) as reg:
        yield reg


async def test_file_urls_are_read_in_place(tmp_path: Path, fetcher: Fetcher) -> None:
    wasm = tmp_path / "c.wasm"
    wasm.write_bytes(BODY_V1)
    for image in (f"file://{wasm}", str(wasm)):
        got = await fetcher.fetch(image)
        assert got.path == wasm
        assert got.digest == sha(BODY_V1)
        assert not got.downloaded
    with pytest.raises(ArtifactError, match="no such file") as info:
        await fetcher.fetch(f"file://{tmp_path}/missing.wasm")
    assert "\n" not in str(info.value)


class CountingServer:
    def __init__(self) -> None:
        self.hits = 0
        self.body = BODY_V1

    async def handle(self, request: web.Request) -> web.Response:
        self.hits += 1
        if request.path != "/c.wasm":
            return web.Response(status=404, text="nope")
        return web.Response(body=self.body)


@pytest.fixture
async def http_source() -> AsyncIterator[tuple[str, CountingServer]]:
    server = CountingServer()
    app = web.Application()
    app.router.add_get("/{tail:.*}", server.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}", server
    finally:
        await runner.cleanup()


async def test_http_downloads_are_cached_and_policy_decides_refetch(
    fetcher: Fetcher, http_source: tuple[str, CountingServer]
) -> None:
    base, server = http_source
    first = await fetcher.fetch(f"{base}/c.wasm")
    assert first.downloaded and first.path.read_bytes() == BODY_V1 and first.digest == sha(BODY_V1)
    again = await fetcher.fetch(f"{base}/c.wasm", policy=PullPolicy.IF_NOT_PRESENT)
    assert not again.downloaded and server.hits == 1
    never = await fetcher.fetch(f"{base}/c.wasm", policy=PullPolicy.NEVER)
    assert never.digest == first.digest and server.hits == 1
    server.body = BODY_V2
    fresh = await fetcher.fetch(f"{base}/c.wasm", policy=PullPolicy.ALWAYS)
    assert fresh.downloaded and fresh.digest == sha(BODY_V2) and server.hits == 2
    with pytest.raises(ArtifactError, match="Never"):
        await fetcher.fetch(f"{base}/other.wasm", policy=PullPolicy.NEVER)
    with pytest.raises(ArtifactError, match="answered 404") as info:
        await fetcher.fetch(f"{base}/missing.wasm")
    assert not info.value.retryable


async def test_cache_evicts_least_recently_used_components(
    tmp_path: Path, http_source: tuple[str, CountingServer]
) -> None:
    base, server = http_source
    settings = ArtifactSettings(cache_dir=tmp_path / "small", max_cache_bytes=2 * len(BODY_V1) + 100)
    async with Fetcher(settings) as small:
        bodies = [BODY_V1 + bytes([i]) for i in range(3)]
        fetched = []
        for i, body in enumerate(bodies):
            server.body = body
            fetched.append(await small.fetch(f"{base}/c.wasm?v={i}"))
            if i == 1:  # use the first one again: now the second is the least recently used
                assert not (await small.fetch(f"{base}/c.wasm?v=0", policy=PullPolicy.IF_NOT_PRESENT)).downloaded
        assert fetched[0].path.exists() and fetched[2].path.exists()
        assert not fetched[1].path.exists()
        hits = server.hits
        again = await small.fetch(f"{base}/c.wasm?v=1", policy=PullPolicy.IF_NOT_PRESENT)
        assert again.downloaded and server.hits == hits + 1  # evicted: fetched again


async def test_oci_anonymous_pull_and_tag_updates(registry: Registry, fetcher: Fetcher) -> None:
    push_wasm(registry, "anon/hello", "1", BODY_V1)
    image = f"{registry.host}/anon/hello:1"
    got = await fetcher.fetch(image)
    assert got.downloaded and got.path.read_bytes() == BODY_V1 and got.digest == sha(BODY_V1)

    push_wasm(registry, "anon/hello", "1", BODY_V2)  # the tag moves
    cached = await fetcher.fetch(image, policy=PullPolicy.IF_NOT_PRESENT)
    assert cached.digest == sha(BODY_V1) and not cached.downloaded
    moved = await fetcher.fetch(image, policy=PullPolicy.ALWAYS)
    assert moved.digest == sha(BODY_V2) and moved.downloaded
    # Always with an unchanged digest asks the registry but does not download again.
    same = await fetcher.fetch(image, policy=PullPolicy.ALWAYS)
    assert same.digest == sha(BODY_V2) and not same.downloaded


async def test_oci_errors_are_one_line_and_say_whether_to_retry(registry: Registry, fetcher: Fetcher) -> None:
    with pytest.raises(ArtifactError, match="not found") as info:
        await fetcher.fetch(f"{registry.host}/anon/absent:1")
    assert not info.value.retryable and "\n" not in str(info.value)
    with pytest.raises(ArtifactError, match="invalid tag"):
        await fetcher.fetch(f"{registry.host}/anon/hello:bad tag")
    with pytest.raises(ArtifactError, match="unreachable") as unreachable:
        await fetcher.fetch("127.0.0.1:1/anon/hello:1")
    assert unreachable.value.retryable


async def test_oci_digest_reference(registry: Registry, fetcher: Fetcher) -> None:
    body = BODY_V1 + b"pinned"
    push_wasm(registry, "anon/pinned", "x", body)
    # the manifest digest is what a pinned reference names
    req = urllib.request.Request(
        f"{registry.url}/v2/anon/pinned/manifests/x",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
    )
    with urllib.request.urlopen(req) as response:
        manifest_digest = response.headers["Docker-Content-Digest"]
    got = await fetcher.fetch(f"{registry.host}/anon/pinned@{manifest_digest}")
    assert got.path.read_bytes() == body


async def test_oci_basic_auth(private_registry: Registry, fetcher: Fetcher) -> None:
    push_wasm(private_registry, "team/app", "2", BODY_V1, auth=("alice", "s3cret"))
    image = f"{private_registry.host}/team/app:2"
    with pytest.raises(ArtifactError, match="requires credentials"):
        await fetcher.fetch(image)
    with pytest.raises(ArtifactError, match=r"denied|refused") as wrong:
        await fetcher.fetch(image, credentials=Credentials("alice", "wrong"))
    assert "wrong" not in str(wrong.value)
    got = await fetcher.fetch(image, credentials=Credentials("alice", "s3cret"))
    assert got.path.read_bytes() == BODY_V1
    # a later fetch without credentials must not reuse alice's authorization
    with pytest.raises(ArtifactError, match="requires credentials"):
        await fetcher.fetch(image, policy=PullPolicy.ALWAYS)


async def test_oci_bearer_token_auth(tmp_path: Path, fetcher: Fetcher) -> None:
    with running_registry(tmp_path / "tokens", token_users={"carol": "t0ken"}) as registry:
        push_wasm(registry, "team/tok", "1", BODY_V2, auth=("carol", "t0ken"))
        image = f"{registry.host}/team/tok:1"
        with pytest.raises(ArtifactError, match="requires credentials"):
            await fetcher.fetch(image)
        with pytest.raises(ArtifactError, match="refused the credentials"):
            await fetcher.fetch(image, credentials=Credentials("carol", "nope"))
        got = await fetcher.fetch(image, credentials=Credentials("carol", "t0ken"))
        assert got.path.read_bytes() == BODY_V2 and got.downloaded
        # the token is reused for the same credentials: a re-check costs no new token
        assert registry.tokens is not None
        issued = registry.tokens.issued
        again = await fetcher.fetch(image, credentials=Credentials("carol", "t0ken"), policy=PullPolicy.ALWAYS)
        assert again.digest == got.digest and not again.downloaded
        assert registry.tokens.issued == issued


async def test_concurrent_fetches_share_one_download(registry: Registry, fetcher: Fetcher) -> None:
    body = BODY_V1 + b"shared" * 100_000
    push_wasm(registry, "anon/shared", "1", body)
    results = await asyncio.gather(*(fetcher.fetch(f"{registry.host}/anon/shared:1") for _ in range(5)))
    assert {r.digest for r in results} == {sha(body)}
    assert all(r is results[0] for r in results)  # one download, its result shared
    assert results[0].downloaded
    assert len(list(fetcher.cache.tmp_dir.iterdir())) == 0  # no stray partial files
