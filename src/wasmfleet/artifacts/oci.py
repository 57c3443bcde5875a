"""A minimal OCI distribution-spec client: resolve a reference to its wasm layer, download blobs.

Authentication follows the registry's challenge: a request is first sent anonymously (or with the
token already obtained for that repository); on 401 the `WWW-Authenticate` header says either
`Basic` (send the pull secret's username/password) or `Bearer realm=..,service=..,scope=..` (get a
token from the realm, with the credentials if any, then retry). Tokens are cached per registry and
repository for the lifetime of the client.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from wasmfleet.artifacts import cache, references
from wasmfleet.artifacts.errors import ArtifactError

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
ACCEPT = ", ".join((OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST))
INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
WASM_LAYER_TYPES = (
    "application/wasm",
    "application/vnd.wasm.content.layer.v1+wasm",
    "application/vnd.module.wasm.content.layer.v1+wasm",
)
_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r}, password='***')"

    def basic(self) -> str:
        """The Authorization header value for HTTP basic auth."""
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode()


@dataclass(frozen=True)
class Layer:
    digest: str
    size: int
    media_type: str


@dataclass(frozen=True)
class Resolved:
    manifest_digest: str
    """Digest of the manifest (or index) the reference points at: what a re-pushed tag changes."""

    layer: Layer
    """The component's wasm layer."""


@dataclass(frozen=True)
class Challenge:
    scheme: str  # "basic" or "bearer"
    params: Mapping[str, str]


def parse_challenge(header: str) -> Challenge:
    scheme, _, rest = header.strip().partition(" ")
    return Challenge(scheme.lower(), dict(_CHALLENGE_PARAM.findall(rest)))


class RegistryClient:
    """Speaks the distribution API of any number of registries through one aiohttp session."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        insecure_registries: tuple[str, ...] = (),
        max_manifest_bytes: int = 4 << 20,
    ) -> None:
        self._session = session
        self._insecure = insecure_registries
        self._max_manifest_bytes = max_manifest_bytes
        self._authorization: dict[tuple[str, str, str], str] = {}

    def base_url(self, ref: references.OciRef) -> str:
        host = ref.api_host
        hostname = host.rsplit(":", 1)[0] if not host.startswith("[") else host.split("]")[0][1:]
        plain = host in self._insecure or hostname in self._insecure
        return f"{'http' if plain else 'https'}://{host}/v2/{ref.repository}"

    async def resolve(self, ref: references.OciRef, credentials: Credentials | None) -> Layer:
        """Follow the reference (through an index if needed) to the component's wasm layer."""
        return (await self.resolve_manifest(ref, credentials)).layer

    async def resolve_manifest(
        self, ref: references.OciRef, credentials: Credentials | None, *, strict: bool = False
    ) -> Resolved:
        """The digest the reference (a tag) currently points at, and its wasm layer.

        `strict`: the layer must carry a wasm media type, and an index must list a manifest that has
        one (a host fetching a plain reference is lenient and takes a lone layer of any type)."""
        manifest, media_type, digest = await self._manifest(ref, ref.reference, credentials)
        if media_type not in INDEX_TYPES and "manifests" not in manifest:
            return Resolved(digest, _wasm_layer(str(ref), manifest, strict=strict))
        if not strict:
            chosen = _choose_from_index(str(ref), manifest)
            manifest, _, _ = await self._manifest(ref, chosen, credentials)
            return Resolved(digest, _wasm_layer(str(ref), manifest))
        candidates = _index_candidates(str(ref), manifest)
        for chosen in candidates:
            child, _, _ = await self._manifest(ref, chosen, credentials)
            if any(_is_wasm(entry) for entry in child.get("layers") or []):
                return Resolved(digest, _wasm_layer(str(ref), child, strict=True))
        raise ArtifactError(
            str(ref), f"image index has no manifest with a wasm layer ({len(candidates)} manifest(s) checked)"
        )

    async def head_digest(self, ref: references.OciRef, credentials: Credentials | None) -> str | None:
        """The manifest digest the reference points at, from a HEAD request (no body moves; Docker
        Hub does not count HEADs against its pull rate limit). None if the registry sends no
        Docker-Content-Digest header."""
        url = f"{self.base_url(ref)}/manifests/{ref.reference}"
        async with await self.request("HEAD", ref, url, credentials, accept=ACCEPT) as response:
            await check(ref, response, f"manifest {ref.reference}")
            digest = response.headers.get("Docker-Content-Digest")
        return digest if digest and digest.startswith("sha256:") else None

    async def download(
        self,
        ref: references.OciRef,
        layer: Layer,
        credentials: Credentials | None,
        writer: cache.BlobWriter,
        *,
        max_bytes: int,
    ) -> None:
        if layer.size > max_bytes:
            raise ArtifactError(str(ref), f"layer of {layer.size} bytes exceeds the {max_bytes}-byte limit")
        url = f"{self.base_url(ref)}/blobs/{layer.digest}"
        async with await self.request("GET", ref, url, credentials) as response:
            await check(ref, response, "blob " + layer.digest)
            async for chunk in response.content.iter_chunked(1 << 16):
                writer.write(chunk)
                if writer.size > max_bytes:
                    raise ArtifactError(str(ref), f"blob larger than the {max_bytes}-byte limit")

    async def _manifest(
        self, ref: references.OciRef, reference: str, credentials: Credentials | None
    ) -> tuple[dict[str, Any], str, str]:
        """The manifest `reference` names, its media type and its digest (sha256 of its bytes)."""
        url = f"{self.base_url(ref)}/manifests/{reference}"
        limit = self._max_manifest_bytes
        async with await self.request("GET", ref, url, credentials, accept=ACCEPT) as response:
            await check(ref, response, f"manifest {reference}")
            if (response.content_length or 0) > limit:
                raise ArtifactError(str(ref), f"manifest of {response.content_length} bytes exceeds the "
                                    f"{limit}-byte limit")
            try:
                body = await response.content.read(limit + 1)
            except aiohttp.ClientError as exc:
                raise ArtifactError(str(ref), f"manifest download failed: {exc}", retryable=True) from exc
            media_type = response.headers.get("Content-Type", "").split(";")[0].strip()
        if len(body) > limit:
            raise ArtifactError(str(ref), f"manifest exceeds the {limit}-byte limit")
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        if reference.startswith("sha256:") and reference != digest:
            raise ArtifactError(str(ref), f"manifest {reference} received with digest {digest}", retryable=True)
        try:
            manifest = json.loads(body)
        except ValueError:
            raise ArtifactError(str(ref), f"manifest {reference} is not JSON") from None
        if not isinstance(manifest, dict):
            raise ArtifactError(str(ref), f"manifest {reference} is not a JSON object")
        return manifest, str(manifest.get("mediaType") or media_type), digest

    async def request(
        self,
        method: str,
        ref: references.OciRef,
        url: str,
        credentials: Credentials | None,
        *,
        accept: str = "*/*",
        push: bool = False,
        data: bytes | None = None,
        content_type: str | None = None,
    ) -> aiohttp.ClientResponse:
        """One registry call, authorized as the registry's challenge asks (pull, or pull+push scope)."""
        # Keyed by the credentials too: a workload without a pull secret must never ride on a token
        # another workload's secret obtained.
        key = (ref.api_host, ref.repository, _credentials_key(credentials) + (":push" if push else ""))
        headers = {"Accept": accept}
        if content_type is not None:
            headers["Content-Type"] = content_type
        if key in self._authorization:
            headers["Authorization"] = self._authorization[key]
        try:
            response = await self._session.request(method, url, headers=headers, data=data)
            if response.status != 401:
                return response
            challenge = parse_challenge(response.headers.get("WWW-Authenticate", ""))
            response.release()
            headers["Authorization"] = await self._authorize(ref, challenge, credentials, push=push)
            self._authorization[key] = headers["Authorization"]
            return await self._session.request(method, url, headers=headers, data=data)
        except aiohttp.ClientError as exc:
            reason = f"registry {ref.api_host} unreachable: {exc}"
            raise ArtifactError(str(ref), reason, retryable=True) from exc
        except TimeoutError as exc:
            raise ArtifactError(str(ref), f"registry {ref.api_host} timed out", retryable=True) from exc

    async def _authorize(
        self, ref: references.OciRef, challenge: Challenge, credentials: Credentials | None, *, push: bool = False
    ) -> str:
        if challenge.scheme == "basic":
            if credentials is None:
                raise ArtifactError(str(ref), "registry requires credentials (set imagePullSecret)")
            return credentials.basic()
        if challenge.scheme != "bearer" or "realm" not in challenge.params:
            raise ArtifactError(str(ref), f"unsupported registry auth challenge {challenge.scheme!r}")
        params = {"scope": f"repository:{ref.repository}:{'pull,push' if push else 'pull'}"}
        if "service" in challenge.params:
            params["service"] = challenge.params["service"]
        headers = {"Authorization": credentials.basic()} if credentials else {}
        async with self._session.get(challenge.params["realm"], params=params, headers=headers) as response:
            if response.status in (401, 403):
                if credentials is None:
                    raise ArtifactError(str(ref), "registry requires credentials (set imagePullSecret)")
                raise ArtifactError(str(ref), "registry token service refused the credentials")
            if response.status != 200:
                reason = f"registry token service answered {response.status}"
                raise ArtifactError(str(ref), reason, retryable=response.status >= 500)
            body = await response.json(content_type=None)
        token = body.get("token") or body.get("access_token") if isinstance(body, dict) else None
        if not token:
            raise ArtifactError(str(ref), "registry token service returned no token")
        return f"Bearer {token}"


async def check(ref: references.OciRef, response: aiohttp.ClientResponse, what: str) -> None:
    if response.status == 200:
        return
    detail = ""
    try:
        body = await response.json(content_type=None)
        errors = body.get("errors") if isinstance(body, dict) else None
        if errors:
            detail = ": " + "; ".join(str(e.get("message", e.get("code", ""))) for e in errors)
    except (ValueError, aiohttp.ClientError):
        pass
    if response.status in (401, 403):
        raise ArtifactError(str(ref), f"access to {what} denied ({response.status}){detail}")
    if response.status == 404:
        raise ArtifactError(str(ref), f"{what} not found{detail}")
    raise ArtifactError(
        str(ref), f"registry answered {response.status} for {what}{detail}", retryable=response.status >= 500
    )


def _credentials_key(credentials: Credentials | None) -> str:
    if credentials is None:
        return ""
    return hashlib.sha256(f"{credentials.username}\0{credentials.password}".encode()).hexdigest()


def _choose_from_index(image: str, index: dict[str, Any]) -> str:
    manifests = [m for m in index.get("manifests") or [] if isinstance(m, dict) and m.get("digest")]
    if not manifests:
        raise ArtifactError(image, "image index lists no manifests")
    for entry in manifests:
        platform = entry.get("platform") or {}
        if platform.get("architecture") == "wasm" or str(platform.get("os", "")).startswith("wasi"):
            return str(entry["digest"])
    return str(manifests[0]["digest"])


def _is_wasm(entry: Any) -> bool:
    return isinstance(entry, dict) and entry.get("mediaType") in WASM_LAYER_TYPES


def _index_candidates(image: str, index: dict[str, Any]) -> list[str]:
    """Digests of an index's manifests, wasm platforms first, at most 16 (an index is small)."""
    manifests = [m for m in index.get("manifests") or [] if isinstance(m, dict) and m.get("digest")]
    if not manifests:
        raise ArtifactError(image, "image index lists no manifests")

    def wasm_first(entry: dict[str, Any]) -> int:
        platform = entry.get("platform") or {}
        return 0 if platform.get("architecture") == "wasm" or str(platform.get("os", "")).startswith("wasi") else 1

    return [str(m["digest"]) for m in sorted(manifests, key=wasm_first)[:16]]


def _wasm_layer(image: str, manifest: dict[str, Any], *, strict: bool = False) -> Layer:
    layers = [entry for entry in manifest.get("layers") or [] if isinstance(entry, dict)]
    if not layers:
        raise ArtifactError(image, "manifest has no layers")
    wasm = [entry for entry in layers if _is_wasm(entry)]
    if not wasm and (strict or len(layers) > 1):
        kinds = ", ".join(str(entry.get("mediaType")) for entry in layers)
        raise ArtifactError(image, f"no wasm layer in the manifest (layers: {kinds})")
    chosen = (wasm or layers)[0]
    digest = chosen.get("digest")
    if not isinstance(digest, str) or not digest.startswith("sha256:"):
        raise ArtifactError(image, f"unsupported layer digest {digest!r}")
    return Layer(digest=digest, size=int(chosen.get("size") or 0), media_type=str(chosen.get("mediaType")))
