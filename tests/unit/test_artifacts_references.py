"""Image references and registry-protocol helpers (wasmfleet.artifacts.references, .oci).

Checks: OCI references parse per the distribution grammar (registry detection, Docker Hub defaults,
tags, digests, oci:// prefix); file:// and http(s):// URLs are recognised; invalid references are
refused with a reason; WWW-Authenticate challenges parse; an index picks the wasm platform; the wasm
layer is chosen by media type and a manifest without one is refused; the registry is spoken to over
plain HTTP only when listed as insecure.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from wasmfleet.artifacts import oci, references
from wasmfleet.artifacts.errors import ArtifactError

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("ghcr.io/wasmcloud/components/hello:0.1.0",
         references.OciRef("ghcr.io", "wasmcloud/components/hello", "0.1.0")),
        ("localhost:5000/hello", references.OciRef("localhost:5000", "hello")),
        (f"127.0.0.1:5000/a/b@{DIGEST}", references.OciRef("127.0.0.1:5000", "a/b", None, DIGEST)),
        (f"reg.io/a:1@{DIGEST}", references.OciRef("reg.io", "a", "1", DIGEST)),
        ("hello", references.OciRef("docker.io", "library/hello")),
        ("user/hello:2", references.OciRef("docker.io", "user/hello", "2")),
        ("oci://reg.io/x:y", references.OciRef("reg.io", "x", "y")),
        ("file:///srv/c.wasm", references.FileRef(Path("/srv/c.wasm"))),
        ("/srv/c.wasm", references.FileRef(Path("/srv/c.wasm"))),
        ("https://example.com/c.wasm", references.HttpRef("https://example.com/c.wasm")),
    ],
)
def test_references_parse(image: str, expected: references.ImageRef) -> None:
    assert references.parse(image) == expected


def test_oci_reference_helpers() -> None:
    ref = references.parse("hello")
    assert isinstance(ref, references.OciRef)
    assert ref.reference == "latest" and ref.api_host == "registry-1.docker.io"
    pinned = references.parse(f"reg.io/a:1@{DIGEST}")
    assert isinstance(pinned, references.OciRef) and pinned.reference == DIGEST
    assert str(pinned) == f"reg.io/a:1@{DIGEST}"


@pytest.mark.parametrize(
    ("image", "reason"),
    [("", "empty"), ("reg.io/UPPER:1", "invalid repository"), ("reg.io/a:bad tag", "invalid tag"),
     ("reg.io/a@sha256", "invalid digest"), ("file://remote/x.wasm", "local path"), ("http://", "no host")],
)
def test_invalid_references_are_refused(image: str, reason: str) -> None:
    with pytest.raises(references.InvalidReference, match=reason):
        references.parse(image)


def test_challenges_parse() -> None:
    bearer = oci.parse_challenge(
        'Bearer realm="https://auth.example/token",service="reg",scope="repository:a/b:pull"'
    )
    assert bearer.scheme == "bearer"
    assert bearer.params == {"realm": "https://auth.example/token", "service": "reg", "scope": "repository:a/b:pull"}
    assert oci.parse_challenge('Basic realm="x"').scheme == "basic"


def test_index_prefers_the_wasm_platform() -> None:
    index = {"manifests": [
        {"digest": "sha256:linux", "platform": {"os": "linux", "architecture": "amd64"}},
        {"digest": "sha256:wasm", "platform": {"os": "wasip2", "architecture": "wasm"}},
    ]}
    assert oci._choose_from_index("i", index) == "sha256:wasm"
    assert oci._choose_from_index("i", {"manifests": [{"digest": "sha256:only"}]}) == "sha256:only"
    with pytest.raises(ArtifactError, match="no manifests"):
        oci._choose_from_index("i", {"manifests": []})


def test_wasm_layer_is_chosen_by_media_type() -> None:
    manifest = {"layers": [
        {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": "sha256:" + "1" * 64, "size": 1},
        {"mediaType": "application/wasm", "digest": "sha256:" + "2" * 64, "size": 2},
    ]}
    assert oci._wasm_layer("i", manifest) == oci.Layer("sha256:" + "2" * 64, 2, "application/wasm")
    single = {"layers": [{"mediaType": "application/octet-stream", "digest": "sha256:" + "3" * 64, "size": 3}]}
    assert oci._wasm_layer("i", single).size == 3
    with pytest.raises(ArtifactError, match="no wasm layer"):
        oci._wasm_layer("i", {"layers": manifest["layers"][:1] * 2})
    with pytest.raises(ArtifactError, match="no layers"):
        oci._wasm_layer("i", {})


def test_plain_http_only_for_insecure_registries() -> None:
    client = oci.RegistryClient(session=None, insecure_registries=("localhost", "10.0.0.5:5000"))  # type: ignore[arg-type]
    base = client.base_url
    assert base(references.OciRef("localhost:5000", "a")) == "http://localhost:5000/v2/a"
    assert base(references.OciRef("10.0.0.5:5000", "a")) == "http://10.0.0.5:5000/v2/a"
    assert base(references.OciRef("10.0.0.5:6000", "a")) == "https://10.0.0.5:6000/v2/a"
    assert base(references.OciRef("ghcr.io", "a")) == "https://ghcr.io/v2/a"
