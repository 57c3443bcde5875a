"""Fetch a component's bytes to a local file: file://, http(s)://, nats:// and OCI registries, cached by digest.

    fetcher = Fetcher(ArtifactSettings(cache_dir=...))
    fetched = await fetcher.fetch("localhost:5000/hello:1", credentials=None, policy=ImagePullPolicy.ALWAYS)
    fetched.path, fetched.digest

Pull policies (as in Kubernetes):
- ALWAYS: ask the source every time; the bytes are downloaded again only if the digest changed.
- IF_NOT_PRESENT: use the cached digest this reference last resolved to; fetch only when absent.
- NEVER: only the cache; an uncached reference is an error.
- UNSPECIFIED: ALWAYS for an OCI reference without a tag or tagged `latest`, IF_NOT_PRESENT otherwise
  (a digest-pinned reference never needs the network once cached).
file:// references are read in place (never copied); the policy does not apply to them.
nats://<bucket>/sha256:<hex> URLs (components the Artifact controller published to the JetStream
Object Store) are fetched over the NATS connection given to `attach_nats`; they name their bytes by
digest, so a cached copy is always used (under any policy) and a download is verified against it.
Concurrent fetches of the same reference share one download.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from wasmfleet.artifacts import cache, object_store, oci, references
from wasmfleet.artifacts.errors import ArtifactError
from wasmfleet.artifacts.oci import Credentials

log = logging.getLogger(__name__)

__all__ = ["ArtifactError", "ArtifactSettings", "Credentials", "Fetched", "Fetcher", "PullPolicy"]


class PullPolicy(enum.Enum):
    UNSPECIFIED = "unspecified"
    ALWAYS = "always"
    IF_NOT_PRESENT = "if-not-present"
    NEVER = "never"


def _default_cache_dir() -> Path:
    return Path.home() / ".cache" / "wasmfleet" / "artifacts"


@dataclass(frozen=True)
class ArtifactSettings:
    cache_dir: Path = field(default_factory=_default_cache_dir)
    """Where fetched components are kept, by digest. Shared safely by several hosts."""

    insecure_registries: tuple[str, ...] = ("localhost", "127.0.0.1", "::1")
    """Registries spoken to over plain HTTP. Loopback only by default: a registry on the same machine
    (tests, `wasmfleet up`) rarely has a certificate, a remote one always should."""

    registry_mirrors: tuple[tuple[str, str], ...] = ()
    """(registry, mirror) pairs: images named on `registry` are pulled from `mirror` (a registry
    host[:port]) under the same repository and tag, like containerd's mirrors. The image keeps its
    name (cache, status, pull-secret lookup); only where the bytes come from changes."""

    timeout_s: float = 300.0
    """Bound of one whole fetch (connect + manifest + blob). 5 min covers a 100 MB layer on a slow link."""

    connect_timeout_s: float = 10.0
    """Bound of connecting to a registry or URL: a dead registry fails fast and retryably."""

    max_bytes: int = 512 << 20
    """Largest component accepted (512 MB): bigger is surely a mistake and would fill the disk."""

    max_cache_bytes: int = 4 << 30
    """Cache size (4 GB) beyond which the least recently used components are evicted after a
    download. Running workloads do not need their bytes any more (the runtime keeps its compiled
    copy); an evicted component is simply fetched again when next started."""


@dataclass(frozen=True)
class Fetched:
    path: Path
    digest: str
    size: int
    downloaded: bool
    """True when bytes came over the network in this call (False: served from cache or file)."""


class Fetcher:
    def __init__(self, settings: ArtifactSettings) -> None:
        self.settings = settings
        self.cache = cache.BlobCache(settings.cache_dir)
        self._session: aiohttp.ClientSession | None = None
        self._registry: oci.RegistryClient | None = None
        self._inflight: dict[tuple[str, PullPolicy], asyncio.Future[Fetched]] = {}
        self._nats: Any = None

    def attach_nats(self, nc: Any) -> None:
        """Use this NATS connection (nats-py client, JetStream on) for nats:// component URLs."""
        self._nats = nc

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> Fetcher:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _client(self) -> tuple[aiohttp.ClientSession, oci.RegistryClient]:
        if self._session is None or self._registry is None:
            timeout = aiohttp.ClientTimeout(total=self.settings.timeout_s, connect=self.settings.connect_timeout_s)
            self._session = aiohttp.ClientSession(timeout=timeout)
            self._registry = oci.RegistryClient(self._session, insecure_registries=self.settings.insecure_registries)
        return self._session, self._registry

    async def fetch(
        self,
        image: str,
        *,
        credentials: Credentials | None = None,
        policy: PullPolicy = PullPolicy.UNSPECIFIED,
    ) -> Fetched:
        key = (image, policy)
        running = self._inflight.get(key)
        if running is not None:
            return await asyncio.shield(running)
        future: asyncio.Future[Fetched] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            result = await self._fetch(image, credentials, policy)
        except asyncio.CancelledError:
            future.cancel()
            raise
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters (if any) re-raise it themselves
            raise
        else:
            future.set_result(result)
            return result
        finally:
            del self._inflight[key]

    async def _fetch(self, image: str, credentials: Credentials | None, policy: PullPolicy) -> Fetched:
        try:
            ref = references.parse(image)
        except references.InvalidReference as exc:
            raise ArtifactError(image, str(exc).removeprefix(f"{image}: ")) from None
        if isinstance(ref, references.FileRef):
            return await asyncio.to_thread(_local_file, image, ref.path)
        if isinstance(ref, references.NatsRef):
            return await self._fetch_nats(image, ref, policy)
        effective = _effective_policy(ref, policy)
        cached = self.cache.resolved(str(ref))
        if cached is not None and effective in (PullPolicy.IF_NOT_PRESENT, PullPolicy.NEVER):
            return self._from_cache(cached)
        if effective is PullPolicy.NEVER:
            raise ArtifactError(image, "not in the local cache and imagePullPolicy is Never")
        if isinstance(ref, references.HttpRef):
            return await self._fetch_url(image, ref, credentials)
        return await self._fetch_oci(image, ref, credentials)

    def _from_cache(self, digest: str) -> Fetched:
        self.cache.touch(digest)
        path = self.cache.blob_path(digest)
        return Fetched(path=path, digest=digest, size=path.stat().st_size, downloaded=False)

    async def _fetch_oci(self, image: str, named: references.OciRef, credentials: Credentials | None) -> Fetched:
        _, registry = self._client()
        mirror = dict(self.settings.registry_mirrors).get(named.registry)
        ref = dataclasses.replace(named, registry=mirror) if mirror else named
        try:
            layer = await registry.resolve(ref, credentials)
            if self.cache.has_blob(layer.digest):
                self.cache.remember(str(named), layer.digest)
                return self._from_cache(layer.digest)
            writer = self.cache.writer()
            try:
                await registry.download(ref, layer, credentials, writer, max_bytes=self.settings.max_bytes)
                digest = await asyncio.to_thread(writer.commit, layer.digest)
            except BaseException:
                writer.abort()
                raise
        except TimeoutError:
            raise ArtifactError(image, f"fetch timed out after {self.settings.timeout_s:g}s", retryable=True) from None
        except aiohttp.ClientError as exc:
            raise ArtifactError(image, f"download failed: {exc}", retryable=True) from exc
        except cache.DigestMismatch as exc:
            raise ArtifactError(image, f"corrupt download: {exc}", retryable=True) from exc
        return await self._downloaded(str(named), digest, writer.size)

    async def _fetch_nats(self, image: str, ref: references.NatsRef, policy: PullPolicy) -> Fetched:
        if self.cache.has_blob(ref.digest):
            return self._from_cache(ref.digest)
        if policy is PullPolicy.NEVER:
            raise ArtifactError(image, "not in the local cache and imagePullPolicy is Never")
        if self._nats is None:
            raise ArtifactError(image, "this host has no NATS connection to fetch object store URLs", retryable=True)
        writer = self.cache.writer()
        try:
            async with asyncio.timeout(self.settings.timeout_s):
                await object_store.download(self._nats, ref, writer, max_bytes=self.settings.max_bytes)
            digest = await asyncio.to_thread(writer.commit, ref.digest)
        except TimeoutError:
            writer.abort()
            raise ArtifactError(image, f"fetch timed out after {self.settings.timeout_s:g}s", retryable=True) from None
        except cache.DigestMismatch as exc:
            raise ArtifactError(image, f"corrupt download: {exc}", retryable=True) from exc
        except BaseException:
            writer.abort()
            raise
        return await self._downloaded(str(ref), digest, writer.size)

    async def _downloaded(self, ref: str, digest: str, size: int) -> Fetched:
        self.cache.remember(ref, digest)
        evicted = await asyncio.to_thread(self.cache.prune, self.settings.max_cache_bytes, frozenset({digest}))
        if evicted:
            log.info("artifact cache over %d bytes: evicted %d component(s)", self.settings.max_cache_bytes,
                     len(evicted))
        return Fetched(path=self.cache.blob_path(digest), digest=digest, size=size, downloaded=True)

    async def _fetch_url(self, image: str, ref: references.HttpRef, credentials: Credentials | None) -> Fetched:
        session, _ = self._client()
        headers = {"Authorization": credentials.basic()} if credentials else {}
        writer = self.cache.writer()
        try:
            async with session.get(ref.url, headers=headers) as response:
                if response.status != 200:
                    writer.abort()
                    raise ArtifactError(
                        image, f"server answered {response.status} {response.reason or ''}".strip(),
                        retryable=response.status >= 500 or response.status == 429,
                    )
                async for chunk in response.content.iter_chunked(1 << 16):
                    writer.write(chunk)
                    if writer.size > self.settings.max_bytes:
                        raise ArtifactError(image, f"larger than the {self.settings.max_bytes}-byte limit")
            digest = await asyncio.to_thread(writer.commit)
        except ArtifactError:
            writer.abort()
            raise
        except TimeoutError:
            writer.abort()
            raise ArtifactError(image, f"fetch timed out after {self.settings.timeout_s:g}s", retryable=True) from None
        except aiohttp.ClientError as exc:
            writer.abort()
            raise ArtifactError(image, f"download failed: {exc}", retryable=True) from exc
        except BaseException:
            writer.abort()
            raise
        return await self._downloaded(str(ref), digest, writer.size)


def _effective_policy(ref: references.ImageRef, policy: PullPolicy) -> PullPolicy:
    if policy is not PullPolicy.UNSPECIFIED:
        return policy
    if isinstance(ref, references.OciRef) and not ref.digest and ref.tag in (None, "latest"):
        return PullPolicy.ALWAYS
    return PullPolicy.IF_NOT_PRESENT


def _local_file(image: str, path: Path) -> Fetched:
    try:
        size = path.stat().st_size
        if not path.is_file():
            raise ArtifactError(image, "not a regular file")
        return Fetched(path=path, digest=cache.file_digest(path), size=size, downloaded=False)
    except FileNotFoundError:
        raise ArtifactError(image, "no such file") from None
    except PermissionError:
        raise ArtifactError(image, "permission denied") from None
