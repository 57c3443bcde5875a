"""Parse component image references: file://, http(s)://, nats:// URLs and OCI registry references.

A nats:// URL names a component published to a JetStream Object Store: `nats://<bucket>/<digest>`,
e.g. `nats://wasmfleet-artifacts/sha256:<64 hex>` (see docs/artifacts.md). The object is named by the
sha256 of the component bytes, so the URL is immutable and a host verifies what it received against it.

OCI references follow the Docker/distribution grammar: `[registry[:port]/]repository[:tag][@digest]`.
The first path segment is a registry when it contains a dot or a colon or is `localhost`; otherwise
the registry is Docker Hub. An `oci://` prefix is accepted and ignored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
_DIGEST = re.compile(r"^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$")
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_TAG = re.compile(r"^[\w][\w.-]{0,127}$")
_BUCKET = re.compile(r"^[a-zA-Z0-9_-]+$")
_SHA256 = re.compile(r"^sha256:[0-9a-f]{64}$")


class InvalidReference(ValueError):
    """The image string is neither a supported URL nor a valid OCI reference."""


@dataclass(frozen=True)
class FileRef:
    path: Path

    def __str__(self) -> str:
        return f"file://{self.path}"


@dataclass(frozen=True)
class HttpRef:
    url: str

    def __str__(self) -> str:
        return self.url


@dataclass(frozen=True)
class OciRef:
    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def reference(self) -> str:
        """What goes after /manifests/: the digest when pinned, else the tag (default latest)."""
        return self.digest or self.tag or "latest"

    @property
    def api_host(self) -> str:
        return DOCKER_HUB_API if self.registry == DOCKER_HUB else self.registry

    def __str__(self) -> str:
        text = f"{self.registry}/{self.repository}"
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


@dataclass(frozen=True)
class NatsRef:
    """A component in a JetStream Object Store bucket, named by its digest."""

    bucket: str
    digest: str

    def __str__(self) -> str:
        return f"nats://{self.bucket}/{self.digest}"


ImageRef = FileRef | HttpRef | NatsRef | OciRef


def parse(image: str) -> ImageRef:
    text = image.strip()
    if not text:
        raise InvalidReference("empty image reference")
    if text.startswith("file://"):
        parsed = urlparse(text)
        if parsed.netloc not in ("", "localhost"):
            raise InvalidReference(f"{image}: file URLs must name a local path (file:///path)")
        return FileRef(Path(unquote(parsed.path)))
    if text.startswith(("http://", "https://")):
        if not urlparse(text).netloc:
            raise InvalidReference(f"{image}: URL has no host")
        return HttpRef(text)
    if text.startswith("nats://"):
        return _parse_nats(image, text)
    if text.startswith("/"):
        return FileRef(Path(text))
    text = text.removeprefix("oci://")
    return _parse_oci(image, text)


def _parse_oci(image: str, text: str) -> OciRef:
    digest: str | None = None
    if "@" in text:
        text, digest = text.split("@", 1)
        if not _DIGEST.match(digest):
            raise InvalidReference(f"{image}: invalid digest {digest!r}")
    first, _, rest = text.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        registry, path = first, rest
    else:
        registry, path = DOCKER_HUB, text
    tag: str | None = None
    last_slash = path.rfind("/")
    colon = path.rfind(":")
    if colon > last_slash:
        path, tag = path[:colon], path[colon + 1:]
        if not _TAG.match(tag):
            raise InvalidReference(f"{image}: invalid tag {tag!r}")
    if registry == DOCKER_HUB and "/" not in path:
        path = f"library/{path}"
    if not _REPOSITORY.match(path):
        raise InvalidReference(f"{image}: invalid repository name {path!r}")
    return OciRef(registry=registry, repository=path, tag=tag, digest=digest)


def _parse_nats(image: str, text: str) -> NatsRef:
    bucket, _, digest = text.removeprefix("nats://").partition("/")
    if not _BUCKET.match(bucket):
        raise InvalidReference(f"{image}: invalid object store bucket {bucket!r} (nats://<bucket>/sha256:<hex>)")
    if not _SHA256.match(digest):
        raise InvalidReference(f"{image}: object must be named by its digest (nats://<bucket>/sha256:<64 hex>)")
    return NatsRef(bucket=bucket, digest=digest)
