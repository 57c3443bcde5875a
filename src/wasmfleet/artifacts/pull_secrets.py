"""Registry credentials from an imagePullSecret or a docker config file.

Accepted Secrets (as the Kubernetes API returns them, values base64 in `data`):
- type kubernetes.io/dockerconfigjson (`.dockerconfigjson`): the entry for the image's registry host
  (keys may be `host`, `host:port`, `https://host/...`; Docker Hub also under `index.docker.io`);
- type kubernetes.io/dockercfg (`.dockercfg`, the older layout without `auths`), likewise;
- any other type holding `username` and `password` keys (Opaque, kubernetes.io/basic-auth).
Anything else is an error naming the Secret and its type, never a silent anonymous pull.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any

from wasmfleet.artifacts import references
from wasmfleet.artifacts.errors import ArtifactError
from wasmfleet.artifacts.oci import Credentials

DOCKERCONFIGJSON = "kubernetes.io/dockerconfigjson"
DOCKERCFG = "kubernetes.io/dockercfg"
_DOCKER_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"})


def registry_host(image: str) -> str:
    """The registry host:port an OCI reference points at (docker.io for Docker Hub)."""
    ref = references.parse(image)
    if not isinstance(ref, references.OciRef):
        raise ArtifactError(image, "not an OCI registry reference")
    return ref.registry


def credentials_from_secret(secret: Mapping[str, Any], image: str) -> Credentials:
    """Credentials for pulling `image` with the Kubernetes Secret object `secret`."""
    meta = secret.get("metadata") or {}
    name = f"{meta.get('namespace') or 'default'}/{meta.get('name') or '?'}"
    kind = str(secret.get("type") or "Opaque")
    data = _decoded(secret, name, image)
    if kind in (DOCKERCONFIGJSON, DOCKERCFG):
        key = ".dockerconfigjson" if kind == DOCKERCONFIGJSON else ".dockercfg"
        if key not in data:
            raise ArtifactError(image, f"Secret {name} of type {kind} has no {key} key")
        try:
            config = json.loads(data[key])
        except ValueError as exc:
            raise ArtifactError(image, f"Secret {name}: {key} is not valid JSON ({exc})") from None
        auths = config.get("auths", config) if kind == DOCKERCONFIGJSON and isinstance(config, dict) else config
        found = lookup_auths(auths, registry_host(image), where=f"Secret {name}", image=image)
        if found is None:
            raise ArtifactError(image, f"Secret {name} has no credentials for registry {registry_host(image)}")
        return found
    if "username" in data:
        return Credentials(username=data["username"], password=data.get("password", ""))
    raise ArtifactError(
        image,
        f"Secret {name} has type {kind} without username/password keys; an imagePullSecret must be of type "
        f"{DOCKERCONFIGJSON} or hold username and password",
    )


def credentials_from_docker_config(config: Mapping[str, Any], image: str) -> Credentials | None:
    """Credentials for `image` from a parsed ~/.docker/config.json (None when it has no entry).
    Credential helpers (credsStore/credHelpers) are not consulted."""
    auths = config.get("auths")
    if not isinstance(auths, Mapping):
        return None
    return lookup_auths(auths, registry_host(image), where="docker config", image=image)


def lookup_auths(auths: Any, registry: str, *, where: str, image: str) -> Credentials | None:
    """The entry of a docker `auths` map for `registry`, matched by host (scheme and path ignored)."""
    if not isinstance(auths, Mapping):
        raise ArtifactError(image, f"{where}: auths is not a JSON object")
    wanted = _aliases(registry)
    for key, entry in auths.items():
        host = str(key).removeprefix("https://").removeprefix("http://").split("/")[0]
        if host not in wanted or not isinstance(entry, Mapping):
            continue
        if entry.get("username"):
            return Credentials(username=str(entry["username"]), password=str(entry.get("password", "")))
        if entry.get("auth"):
            try:
                user, sep, password = base64.b64decode(str(entry["auth"])).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                raise ArtifactError(image, f"{where}: auth for {host} is not base64 of user:password") from None
            if not sep:
                raise ArtifactError(image, f"{where}: auth for {host} is not base64 of user:password")
            return Credentials(username=user, password=password)
    return None


def _aliases(registry: str) -> frozenset[str]:
    return _DOCKER_HUB_ALIASES if registry in _DOCKER_HUB_ALIASES else frozenset({registry})


def _decoded(secret: Mapping[str, Any], name: str, image: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in (secret.get("data") or {}).items():
        try:
            out[str(key)] = base64.b64decode(str(value), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise ArtifactError(image, f"Secret {name}: data.{key} is not base64 text") from None
    for key, value in (secret.get("stringData") or {}).items():
        out[str(key)] = str(value)
    return out
