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
        manifest, media_type = await self._manifest(ref, ref.reference, credentials)
        if media_type in INDEX_TYPES or "manifests" in manifest:
            chosen = _choose_from_index(str(ref), manifest)
            manifest, media_type = await self._manifest(ref, chosen, credentials)
        return _wasm_layer(str(ref), manifest)

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
        async with await self._get(ref, url, credentials, accept="*/*") as response:
            await _check(ref, response, "blob " + layer.digest)
            async for chunk in response.content.iter_chunked(1 << 16):
                writer.write(chunk)
                if writer.size > max_bytes:
                    raise ArtifactError(str(ref), f"blob larger than the {max_bytes}-byte limit")

    async def _manifest(
        self, ref: references.OciRef, reference: str, credentials: Credentials | None
    ) -> tuple[dict[str, Any], str]:
        url = f"{self.base_url(ref)}/manifests/{reference}"
        async with await self._get(ref, url, credentials, accept=ACCEPT) as response:
            await _check(ref, response, f"manifest {reference}")
            body = await response.content.read(self._max_manifest_bytes + 1)
            media_type = response.headers.get("Content-Type", "").split(";")[0].strip()
        if len(body) > self._max_manifest_bytes:
            raise ArtifactError(str(ref), "manifest too large")
        try:
            manifest = json.loads(body)
        except ValueError:
            raise ArtifactError(str(ref), f"manifest {reference} is not JSON") from None
        if not isinstance(manifest, dict):
            raise ArtifactError(str(ref), f"manifest {reference} is not a JSON object")
        return manifest, str(manifest.get("mediaType") or media_type)

    async def _get(
        self, ref: references.OciRef, url: str, credentials: Credentials | None, *, accept: str
    ) -> aiohttp.ClientResponse:
        # Keyed by the credentials too: a workload without a pull secret must never ride on a token
        # another workload's secret obtained.
        key = (ref.api_host, ref.repository, _credentials_key(credentials))
        headers = {"Accept": accept}
        if key in self._authorization:
            headers["Authorization"] = self._authorization[key]
        try:
            response = await self._session.get(url, headers=headers)
            if response.status != 401:
                return response
            challenge = parse_challenge(response.headers.get("WWW-Authenticate", ""))
            response.release()
            headers["Authorization"] = await self._authorize(ref, challenge, credentials)
            self._authorization[key] = headers["Authorization"]
            return await self._session.get(url, headers=headers)
        except aiohttp.ClientError as exc:
            reason = f"registry {ref.api_host} unreachable: {exc}"
            raise ArtifactError(str(ref), reason, retryable=True) from exc
        except TimeoutError as exc:
            raise ArtifactError(str(ref), f"registry {ref.api_host} timed out", retryable=True) from exc

    async def _authorize(
        self, ref: references.OciRef, challenge: Challenge, credentials: Credentials | None
    ) -> str:
        if challenge.scheme == "basic":
            if credentials is None:
                raise ArtifactError(str(ref), "registry requires credentials (set imagePullSecret)")
            return credentials.basic()
        if challenge.scheme != "bearer" or "realm" not in challenge.params:
            raise ArtifactError(str(ref), f"unsupported registry auth challenge {challenge.scheme!r}")
        params = {"scope": f"repository:{ref.repository}:pull"}
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


async def _check(ref: references.OciRef, response: aiohttp.ClientResponse, what: str) -> None:
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


def _wasm_layer(image: str, manifest: dict[str, Any]) -> Layer:
    layers = [entry for entry in manifest.get("layers") or [] if isinstance(entry, dict)]
    if not layers:
        raise ArtifactError(image, "manifest has no layers")
    wasm = [entry for entry in layers if entry.get("mediaType") in WASM_LAYER_TYPES]
    if not wasm and len(layers) > 1:
        kinds = ", ".join(str(entry.get("mediaType")) for entry in layers)
        raise ArtifactError(image, f"no wasm layer in the manifest (layers: {kinds})")
    chosen = (wasm or layers)[0]
    digest = chosen.get("digest")
    if not isinstance(digest, str) or not digest.startswith("sha256:"):
        raise ArtifactError(image, f"unsupported layer digest {digest!r}")
    return Layer(digest=digest, size=int(chosen.get("size") or 0), media_type=str(chosen.get("mediaType")))
