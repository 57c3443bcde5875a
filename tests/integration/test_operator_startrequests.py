"""Translation of Workload resources into workload.start requests (pure; no servers needed).

Checks:
- environment merge order: literal, then ConfigMaps, then Secrets (last wins); Secret data decoded.
- hostInterfaces config merges configFrom/secretFrom; a missing ConfigMap/Secret/Artifact raises
  MissingReference naming it.
- `artifact://<name>` images resolve to the Artifact URL.
- image-pull credentials come from a dockerconfigjson Secret for the image's registry, or from a
  basic-auth Secret.
- volumes map to hostPath/emptyDir; limits and policies carry over; workloadId = uid.
- the fingerprint changes with the configuration and ignores annotations.
- the replica-group annotation names the WorkloadDeployment of a replica (else its controlling
  ReplicaSet, else the Workload itself), overriding one set on the object; a deployment label on a
  Workload no ReplicaSet controls is ignored; a host reading the request falls back to the name.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from wasmfleet.api import models
from wasmfleet.bus import messages, replica_groups
from wasmfleet.operator import startrequests as sr


def workload(spec: dict[str, Any], **meta: Any) -> models.Workload:
    return models.Workload.model_validate({
        "apiVersion": "runtime.wasmcloud.dev/v1alpha1", "kind": "Workload",
        "metadata": {"name": "w", "namespace": "ns", "uid": "uid-1", "annotations": {"a": "b"}, **meta},
        "spec": spec,
    })


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


SPEC: dict[str, Any] = {
    "components": [{
        "name": "c", "image": "artifact://app", "poolSize": 2, "maxInvocations": 10, "maxConcurrency": 3,
        "imagePullPolicy": "Always",
        "localResources": {
            "environment": {"config": {"A": "lit", "B": "lit", "C": "lit"},
                            "configFrom": [{"name": "cm"}], "secretFrom": [{"name": "sec"}]},
            "config": {"k": "v"}, "allowedHosts": ["example.com"],
            "volumeMounts": [{"name": "scratch", "mountPath": "/tmp", "readOnly": True}],
        },
    }],
    "hostInterfaces": [{"namespace": "wasi", "package": "keyvalue", "interfaces": ["store"],
                        "config": {"bucket": "x"}, "configFrom": [{"name": "kv"}]}],
    "volumes": [{"name": "scratch", "ephemeral": {}}, {"name": "data", "hostPath": {"path": "/srv"}}],
}


def sources() -> sr.Sources:
    secret = sr.decode_secret({"data": {"C": b64("secret")}})
    config_maps = {"cm": {"B": "cm", "C": "cm"}, "kv": {"bucket": "from-cm"}}
    return sr.Sources(config_maps, {"sec": secret}, {"app": "oci://r/app:1"})


def test_references_and_full_translation() -> None:
    wl = workload(SPEC)
    refs = sr.references(wl.spec)
    assert refs == sr.References(frozenset({"cm", "kv"}), frozenset({"sec"}), frozenset({"app"}))
    req = sr.build(wl, sources())
    assert req.workload_id == "uid-1"
    comp = req.workload.wit_world.components[0]
    assert comp.image == "oci://r/app:1"
    assert comp.local_resources.environment == {"A": "lit", "B": "cm", "C": "secret"}
    assert comp.local_resources.config == {"k": "v"} and comp.local_resources.allowed_hosts == ["example.com"]
    assert (comp.pool_size, comp.max_invocations, comp.max_concurrency) == (2, 10, 3)
    assert comp.image_pull_policy is messages.ImagePullPolicy.ALWAYS
    assert req.workload.wit_world.host_interfaces[0].config == {"bucket": "from-cm"}
    vols = {v.name: v for v in req.workload.volumes}
    assert vols["scratch"].empty_dir is not None and vols["data"].host_path.local_path == "/srv"  # type: ignore[union-attr]
    assert req.workload.namespace == "ns" and req.workload.name == "w"


@pytest.mark.parametrize("missing", ["cm", "sec", "app"])
def test_missing_reference_names_it(missing: str) -> None:
    src = sources()
    src = sr.Sources(
        {k: v for k, v in src.config_maps.items() if k != missing},
        {k: v for k, v in src.secrets.items() if k != missing},
        {k: v for k, v in src.artifacts.items() if k != missing},
    )
    with pytest.raises(sr.MissingReference, match=repr(missing)):
        sr.build(workload(SPEC), src)


def test_pull_secret_from_dockerconfigjson_and_basic_auth() -> None:
    cfg = {"auths": {"registry.example.com": {"auth": b64("user:pw")}, "other.io": {"username": "o", "password": "p"}}}
    spec = {"components": [{"name": "c", "image": "registry.example.com/app:1", "imagePullSecret": {"name": "pull"}}]}
    src = sr.Sources(secrets={"pull": sr.decode_secret({"data": {".dockerconfigjson": b64(json.dumps(cfg))}})})
    comp = sr.build(workload(spec), src).workload.wit_world.components[0]
    assert comp.image_pull_secret == messages.ImagePullSecret(username="user", password="pw")
    basic = sr.Sources(secrets={"pull": {"username": "u", "password": "p"}})
    comp = sr.build(workload(spec), basic).workload.wit_world.components[0]
    assert comp.image_pull_secret == messages.ImagePullSecret(username="u", password="p")
    spec["components"][0]["image"] = "elsewhere.io/app:1"
    with pytest.raises(sr.MissingReference, match=r"no credentials for registry elsewhere\.io"):
        sr.build(workload(spec), src)
    assert sr.registry_of("library/hello:1") == "docker.io" and sr.registry_of("localhost:5000/x") == "localhost:5000"


def test_fingerprint_tracks_configuration_not_annotations() -> None:
    req = sr.build(workload(SPEC), sources())
    same = sr.build(workload(SPEC), sources())
    same.workload.annotations["other"] = "x"
    assert sr.fingerprint(req) == sr.fingerprint(same)
    changed = sr.Sources({**sources().config_maps, "cm": {"B": "changed"}}, sources().secrets, sources().artifacts)
    assert sr.fingerprint(sr.build(workload(SPEC), changed)) != sr.fingerprint(req)


def _owned_by(kind: str, name: str) -> list[dict[str, Any]]:
    return [{"apiVersion": "runtime.wasmcloud.dev/v1alpha1", "kind": kind, "name": name, "uid": "u",
             "controller": True}]


def test_replica_group_names_the_deployment_then_the_replicaset_then_the_workload() -> None:
    spec = {"components": [{"name": "c", "image": "file:///x.wasm"}]}
    deployment_label = {"runtime.wasmcloud.dev/workload-deployment": "jobs"}
    replica = workload(spec, name="jobs-5d8f-abcde", labels=deployment_label,
                       ownerReferences=_owned_by("WorkloadReplicaSet", "jobs-5d8f"),
                       annotations={replica_groups.ANNOTATION: "set-by-a-user", "a": "b"})
    req = sr.build(replica, sources())
    assert req.workload.annotations == {replica_groups.ANNOTATION: "jobs", "a": "b"}
    assert replica_groups.of(req.workload) == "jobs"
    of_rs = workload(spec, name="rs-1-xyz", ownerReferences=_owned_by("WorkloadReplicaSet", "rs-1"))
    assert replica_groups.of(sr.build(of_rs, sources()).workload) == "rs-1"
    # A standalone Workload is its own group, whatever labels it carries.
    alone = workload(spec, name="solo", labels=deployment_label)
    assert replica_groups.of(sr.build(alone, sources()).workload) == "solo"
    # A request from an operator that sends no annotation (upstream's): the Workload's name.
    assert replica_groups.of(messages.Workload(namespace="ns", name="plain")) == "plain"
