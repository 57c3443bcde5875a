"""Pure parts of the artifacts layer: nats:// URLs, wasm kinds, pull secrets, the OCI artifact layout.

Checks: `nats://<bucket>/sha256:<hex>` parses to a NatsRef and prints back the same, object_store.url
builds it, and a bad bucket or a name that is not a sha256 digest is refused with the expected form;
the wasm header tells a component from a core module and from non-wasm bytes, and check_component
names the cause; imagePullSecrets: dockerconfigjson entries are found by registry host (with or
without scheme/path, `auth` or username/password, Docker Hub aliases), a secret with no entry for the
registry, a secret of the wrong type and undecodable data are errors naming the Secret, and
username/password keys work in Opaque and basic-auth secrets; the docker config lookup returns None
when the registry is absent; the pushed config and manifest carry upstream's media types and the
`created` annotation, and the layer/config digests match their bytes; the controller API
(publishing.__all__, signatures, Published fields) is pinned.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import inspect
import json
import re
from typing import Any

import pytest

from wasmfleet.artifacts import object_store, pull_secrets, references, transfers, wasm_kinds
from wasmfleet.artifacts.errors import ArtifactError
from wasmfleet.artifacts.oci import Credentials

DIGEST = "sha256:" + "0f" * 32
COMPONENT = b"\0asm\r\0\x01\0"
CORE = b"\0asm\x01\0\0\0"


def test_nats_urls_round_trip() -> None:
    ref = references.parse(f"nats://wasmfleet-artifacts/{DIGEST}")
    assert ref == references.NatsRef(bucket="wasmfleet-artifacts", digest=DIGEST)
    assert str(ref) == f"nats://wasmfleet-artifacts/{DIGEST}" == object_store.url(DIGEST)
    assert object_store.url(DIGEST, "other") == f"nats://other/{DIGEST}"


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        (f"nats://bad.bucket/{DIGEST}", "invalid object store bucket"),
        ("nats://wasmfleet-artifacts/hello.wasm", "named by its digest"),
        ("nats://wasmfleet-artifacts/sha256:ABC", "named by its digest"),
        ("nats://wasmfleet-artifacts", "named by its digest"),
    ],
)
def test_bad_nats_urls_are_refused(url: str, reason: str) -> None:
    with pytest.raises(references.InvalidReference, match=reason):
        references.parse(url)


def test_wasm_kinds() -> None:
    assert wasm_kinds.describe(COMPONENT) == "component"
    assert wasm_kinds.describe(CORE) == "core module"
    assert wasm_kinds.describe(b"\0asm").startswith("not wasm (4 bytes")
    assert wasm_kinds.describe(b"PK\x03\x04....").startswith("not wasm")
    wasm_kinds.check_component("img", COMPONENT)
    with pytest.raises(ArtifactError, match="img: layer is a core wasm module, not a component") as core:
        wasm_kinds.check_component("img", CORE)
    assert not core.value.retryable
    with pytest.raises(ArtifactError, match="not wasm"):
        wasm_kinds.check_component("img", b"<html>..")


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def secret(kind: str, data: dict[str, str], name: str = "pull") -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "apps"}, "type": kind,
            "data": {k: _b64(v) for k, v in data.items()}}


def dockerconfig(auths: dict[str, Any]) -> dict[str, Any]:
    return secret(pull_secrets.DOCKERCONFIGJSON, {".dockerconfigjson": json.dumps({"auths": auths})})


def test_dockerconfigjson_secrets_are_looked_up_by_registry_host() -> None:
    s = dockerconfig({
        "https://ghcr.io/v1/": {"auth": _b64("gh:tok")},
        "registry.example:5000": {"username": "u", "password": "p"},
        "https://index.docker.io/v1/": {"username": "hub", "password": "hp"},
    })
    assert pull_secrets.credentials_from_secret(s, "ghcr.io/acme/hello:1") == Credentials("gh", "tok")
    assert pull_secrets.credentials_from_secret(s, "registry.example:5000/x:1") == Credentials("u", "p")
    assert pull_secrets.credentials_from_secret(s, "library/hello:1") == Credentials("hub", "hp")
    no_entry = re.escape("Secret apps/pull has no credentials for registry quay.io")
    with pytest.raises(ArtifactError, match=no_entry) as info:
        pull_secrets.credentials_from_secret(s, "quay.io/x/y:1")
    assert not info.value.retryable


def test_username_password_secrets() -> None:
    for kind in ("Opaque", "kubernetes.io/basic-auth"):
        s = secret(kind, {"username": "alice", "password": "s3cret"})
        assert pull_secrets.credentials_from_secret(s, "reg.io/a:1") == Credentials("alice", "s3cret")


def test_wrong_secrets_name_the_secret_and_the_cause() -> None:
    with pytest.raises(ArtifactError, match=re.escape("Secret apps/tls has type kubernetes.io/tls without username")):
        pull_secrets.credentials_from_secret(secret("kubernetes.io/tls", {"tls.crt": "x"}, "tls"), "reg.io/a:1")
    no_key = re.escape("Secret apps/pull of type kubernetes.io/dockerconfigjson has no .dockerconfigjson key")
    with pytest.raises(ArtifactError, match=no_key):
        pull_secrets.credentials_from_secret(secret(pull_secrets.DOCKERCONFIGJSON, {}), "reg.io/a:1")
    with pytest.raises(ArtifactError, match="is not valid JSON"):
        pull_secrets.credentials_from_secret(
            secret(pull_secrets.DOCKERCONFIGJSON, {".dockerconfigjson": "{nope"}), "reg.io/a:1")
    bad = {"metadata": {"name": "b"}, "type": "Opaque", "data": {"username": "***"}}
    with pytest.raises(ArtifactError, match=re.escape("data.username is not base64")):
        pull_secrets.credentials_from_secret(bad, "reg.io/a:1")
    with pytest.raises(ArtifactError, match="not base64 of user:password"):
        pull_secrets.credentials_from_secret(dockerconfig({"reg.io": {"auth": _b64("nocolon")}}), "reg.io/a:1")


def test_docker_config_lookup() -> None:
    config = {"auths": {"localhost:5000": {"auth": _b64("me:pw")}}, "credsStore": "desktop"}
    assert pull_secrets.credentials_from_docker_config(config, "localhost:5000/a:1") == Credentials("me", "pw")
    assert pull_secrets.credentials_from_docker_config(config, "ghcr.io/a:1") is None
    assert pull_secrets.credentials_from_docker_config({}, "ghcr.io/a:1") is None


def test_pushed_layout_uses_upstream_media_types() -> None:
    wasm = COMPONENT + b"body"
    config = transfers.config_blob("sha256:" + hashlib.sha256(wasm).hexdigest(), "2026-01-01T00:00:00Z")
    manifest = json.loads(transfers.manifest_blob(config, wasm, annotations={transfers.CREATED: "2026"}))
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert manifest["config"]["mediaType"] == "application/vnd.wasm.config.v0+json"
    assert manifest["config"]["digest"] == "sha256:" + hashlib.sha256(config).hexdigest()
    assert manifest["layers"] == [{"mediaType": "application/wasm", "size": len(wasm),
                                   "digest": "sha256:" + hashlib.sha256(wasm).hexdigest()}]
    assert manifest["annotations"] == {"org.opencontainers.image.created": "2026"}
    parsed_config = json.loads(config)
    assert parsed_config["architecture"] == "wasm"
    assert parsed_config["layerDigests"] == [manifest["layers"][0]["digest"]]


def test_the_controller_api_is_pinned() -> None:
    """The signatures docs/artifacts.md promises the Artifact controller."""
    from wasmfleet.artifacts import publishing

    assert sorted(publishing.__all__) == sorted([
        "ArtifactError", "Credentials", "PublishSettings", "Published", "Resolved",
        "delete", "is_current", "is_registry_reference", "list_published", "publish", "resolve",
    ])
    signatures = {name: str(inspect.signature(getattr(publishing, name)))
                  for name in ("resolve", "publish", "delete", "list_published", "is_current")}
    assert signatures == {
        "resolve": "(ref: 'str', auth: 'Credentials | None', *, settings: 'PublishSettings' = "
                   f"{publishing.PublishSettings()!r}) -> 'Resolved'",
        "publish": "(ref: 'str', auth: 'Credentials | None', nc: 'Any', *, settings: 'PublishSettings' = "
                   f"{publishing.PublishSettings()!r}) -> 'Published'",
        "delete": "(digest: 'str', nc: 'Any', *, bucket: 'str' = 'wasmfleet-artifacts') -> 'bool'",
        "list_published": "(nc: 'Any', *, bucket: 'str' = 'wasmfleet-artifacts') -> "
                          "'list[object_store.StoredObject]'",
        "is_current": "(ref: 'str', auth: 'Credentials | None', nc: 'Any', *, manifest_digest: 'str', url: 'str', "
                      f"settings: 'PublishSettings' = {publishing.PublishSettings()!r}) -> 'bool'",
    }
    assert [f.name for f in dataclasses.fields(publishing.Published)] == [
        "url", "digest", "size", "manifest_digest", "media_type", "uploaded"]
    assert publishing.is_registry_reference("ghcr.io/a/b:1")
    assert not publishing.is_registry_reference("file:///x.wasm")
    assert not publishing.is_registry_reference(f"nats://wasmfleet-artifacts/{DIGEST}")
