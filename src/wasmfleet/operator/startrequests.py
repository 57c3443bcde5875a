"""Translating a Workload resource into the workload.start request a host receives.

Everything a host needs is resolved here, by the operator, so hosts never read the API server:
ConfigMaps and Secrets named in configFrom/secretFrom are merged in (literal values first, then
ConfigMaps, then Secrets, last one wins), `artifact://<name>` images become the Artifact's URL, and
image-pull Secrets become a username/password pair. Pure functions over already-fetched data.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from wasmfleet.api import groups, models
from wasmfleet.bus import http_routing, messages, replica_groups

ARTIFACT_SCHEME = "artifact://"


class MissingReference(Exception):
    """A referenced ConfigMap, Secret or Artifact does not exist (or is not ready) yet."""

    def __init__(self, kind: str, name: str, detail: str = "not found") -> None:
        super().__init__(f"{kind} {name!r} {detail}")
        self.kind = kind
        self.name = name


@dataclass(frozen=True)
class References:
    config_maps: frozenset[str] = frozenset()
    secrets: frozenset[str] = frozenset()
    artifacts: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Sources:
    """The referenced objects' contents: ConfigMap data, decoded Secret data, Artifact URLs."""

    config_maps: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    secrets: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    artifacts: Mapping[str, str] = field(default_factory=dict)


def _resources_of(spec: models.WorkloadSpec) -> list[models.LocalResources]:
    found = [c.local_resources for c in spec.components if c.local_resources]
    if spec.service is not None and spec.service.local_resources:
        found.append(spec.service.local_resources)
    return found


def references(spec: models.WorkloadSpec) -> References:
    cms: set[str] = set()
    secrets: set[str] = set()
    artifacts: set[str] = set()
    for res in _resources_of(spec):
        if res.environment:
            cms.update(r.name for r in res.environment.config_from)
            secrets.update(r.name for r in res.environment.secret_from)
    for hi in spec.host_interfaces:
        cms.update(r.name for r in hi.config_from)
        secrets.update(r.name for r in hi.secret_from)
    images = [(c.image, c.image_pull_secret) for c in spec.components]
    if spec.service is not None:
        images.append((spec.service.image, spec.service.image_pull_secret))
    for image, pull_secret in images:
        if image.startswith(ARTIFACT_SCHEME):
            artifacts.add(image[len(ARTIFACT_SCHEME):])
        if pull_secret is not None:
            secrets.add(pull_secret.name)
    return References(frozenset(cms), frozenset(secrets), frozenset(artifacts))


def decode_secret(secret: Mapping[str, object]) -> dict[str, str]:
    """A Secret's data (base64) and stringData as plain strings."""
    out: dict[str, str] = {}
    for key, value in dict(secret.get("data") or {}).items():  # type: ignore[call-overload]
        out[str(key)] = base64.b64decode(str(value)).decode("utf-8", errors="replace")
    out.update({str(k): str(v) for k, v in dict(secret.get("stringData") or {}).items()})  # type: ignore[call-overload]
    return out


def _merge(
    literal: Mapping[str, str],
    config_from: list[models.LocalObjectReference],
    secret_from: list[models.LocalObjectReference],
    src: Sources,
) -> dict[str, str]:
    merged = dict(literal)
    for ref in config_from:
        if ref.name not in src.config_maps:
            raise MissingReference("ConfigMap", ref.name)
        merged.update(src.config_maps[ref.name])
    for ref in secret_from:
        if ref.name not in src.secrets:
            raise MissingReference("Secret", ref.name)
        merged.update(src.secrets[ref.name])
    return merged


def resolve_image(image: str, src: Sources) -> str:
    if not image.startswith(ARTIFACT_SCHEME):
        return image
    name = image[len(ARTIFACT_SCHEME):]
    url = src.artifacts.get(name)
    if not url:
        raise MissingReference("Artifact", name, "has no artifactUrl yet")
    return url


def registry_of(image: str) -> str:
    """The registry host of an OCI reference (docker.io when the first segment is not a host)."""
    first = image.split("/", 1)[0]
    if "/" in image and ("." in first or ":" in first or first == "localhost"):
        return first
    return "docker.io"


def pull_secret(
    ref: models.LocalObjectReference | None, image: str, src: Sources
) -> messages.ImagePullSecret | None:
    """Credentials for `image` from a dockerconfigjson Secret, or a basic-auth one."""
    if ref is None:
        return None
    data = src.secrets.get(ref.name)
    if data is None:
        raise MissingReference("Secret", ref.name)
    if "username" in data:
        return messages.ImagePullSecret(username=data["username"], password=data.get("password", ""))
    raw = data.get(".dockerconfigjson") or data.get(".dockercfg") or "{}"
    try:
        auths = json.loads(raw)
    except ValueError as exc:
        raise MissingReference("Secret", ref.name, f"is not valid docker config JSON ({exc})") from exc
    auths = auths.get("auths", auths) if isinstance(auths, dict) else {}
    registry = registry_of(image)
    for host, entry in auths.items():
        if host.removeprefix("https://").removeprefix("http://").split("/")[0] != registry:
            continue
        if entry.get("username"):
            return messages.ImagePullSecret(username=entry["username"], password=entry.get("password", ""))
        if entry.get("auth"):
            user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
            return messages.ImagePullSecret(username=user, password=password)
    raise MissingReference("Secret", ref.name, f"has no credentials for registry {registry}")


def _local(res: models.LocalResources | None, src: Sources) -> messages.LocalResources:
    if res is None:
        return messages.LocalResources()
    env = res.environment or models.EnvironmentSource()
    return messages.LocalResources(
        config=dict(res.config),
        environment=_merge(env.config, env.config_from, env.secret_from, src),
        volume_mounts=[
            messages.VolumeMount(name=m.name, mount_path=m.mount_path, read_only=m.read_only)
            for m in res.volume_mounts
        ],
        allowed_hosts=list(res.allowed_hosts),
        allowed_ip_name_lookups=list(res.allowed_ip_name_lookups),
        allowed_host_loopback_ports=list(res.allowed_host_loopback_ports),
    )


_PULL_POLICIES = {
    "Always": messages.ImagePullPolicy.ALWAYS,
    "IfNotPresent": messages.ImagePullPolicy.IF_NOT_PRESENT,
    "Never": messages.ImagePullPolicy.NEVER,
}


def _pull_policy(policy: str) -> messages.ImagePullPolicy:
    return _PULL_POLICIES.get(policy, messages.ImagePullPolicy.UNSPECIFIED)


def replica_group(wl: models.Workload) -> str:
    """The name every replica of `wl`'s deployment shares (bus/replica_groups.py): the
    WorkloadDeployment's for a replica of one (its label, which the operator sets on the template),
    else the owning WorkloadReplicaSet's, else the Workload's own. Read only under a controlling
    ReplicaSet: a label on a standalone Workload does not make it join a deployment's group."""
    meta = wl.metadata
    owner = next((ref for ref in meta.owner_references
                  if ref.get("controller") and ref.get("kind") == "WorkloadReplicaSet" and ref.get("name")), None)
    if owner is None:
        return meta.name or ""
    return meta.labels.get(groups.LABEL_WORKLOAD_DEPLOYMENT) or str(owner["name"])


def build(wl: models.Workload, src: Sources) -> messages.WorkloadStartRequest:
    """The start request for `wl`; raises MissingReference when something referenced is absent."""
    spec = wl.spec
    components = []
    for c in spec.components:
        image = resolve_image(c.image, src)
        components.append(
            messages.Component(
                name=c.name,
                image=image,
                image_pull_secret=pull_secret(c.image_pull_secret, image, src),
                image_pull_policy=_pull_policy(c.image_pull_policy),
                pool_size=c.pool_size,
                max_invocations=c.max_invocations,
                max_concurrency=c.max_concurrency,
                local_resources=_local(c.local_resources, src),
            )
        )
    service = None
    if spec.service is not None:
        image = resolve_image(spec.service.image, src)
        service = messages.Service(
            image=image,
            image_pull_secret=pull_secret(spec.service.image_pull_secret, image, src),
            image_pull_policy=_pull_policy(spec.service.image_pull_policy),
            max_restarts=spec.service.max_restarts,
            local_resources=_local(spec.service.local_resources, src),
        )
    interfaces = [
        messages.WitInterface(
            namespace=hi.namespace,
            package=hi.package,
            version=hi.version or "",
            interfaces=list(hi.interfaces),
            name=hi.name or "",
            config=_merge(hi.config, hi.config_from, hi.secret_from, src),
        )
        for hi in spec.host_interfaces
    ]
    # The host must accept the Kubernetes Service's names too (clients may reach it straight from the
    # Service's EndpointSlice): they travel in host-aliases, as upstream's operator sends them.
    kube_service = spec.kubernetes.service if spec.kubernetes else None
    interfaces = http_routing.with_service_aliases(
        interfaces, service=kube_service.name if kube_service else None, namespace=wl.metadata.namespace or "")
    volumes = [
        messages.Volume(
            name=v.name,
            host_path=messages.HostPathVolume(local_path=v.host_path.path) if v.host_path else None,
            empty_dir=messages.EmptyDirVolume() if v.host_path is None else None,
        )
        for v in spec.volumes
    ]
    meta = wl.metadata
    return messages.WorkloadStartRequest(
        workload_id=meta.uid or "",
        workload=messages.Workload(
            namespace=meta.namespace or "",
            name=meta.name or "",
            # The operator's value wins over an annotation of the same key set on the object.
            annotations={**meta.annotations, replica_groups.ANNOTATION: replica_group(wl)},
            service=service,
            wit_world=messages.WitWorld(components=components, host_interfaces=interfaces),
            volumes=volumes,
        ),
    )


def fingerprint(req: messages.WorkloadStartRequest) -> str:
    """A short digest of everything the host receives, except annotations (which include the
    fingerprint itself): a different fingerprint means the running workload must be restarted.
    The replica-group annotation is left out with the rest: it follows from the Workload's owner,
    which never changes, and a replica an older operator started keeps its per-replica default
    queue group until it is restarted, rather than every replica restarting on an upgrade."""
    body = messages.to_dict(req)
    body.get("workload", {}).pop("annotations", None)
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]
