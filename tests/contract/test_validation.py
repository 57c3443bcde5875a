"""Schema validation against the CRD's openAPIV3Schema: defaults applied, unknown fields pruned, and
invalid objects answered with 422 listing every field at fault."""

from __future__ import annotations

from contract_client import Kube
from contract_support import WIDGETS, widget


def test_defaults_are_applied_and_unknown_fields_pruned(kube: Kube, ns: str) -> None:
    body = widget("w", bogus="x", extra={"free": {"form": 1}})
    body["unknownTop"] = 1
    created = kube.post(f"{WIDGETS}/namespaces/{ns}/widgets", body)
    assert created.status == 201, created.body
    spec = created.body["spec"]
    assert spec["replicas"] == 1 and spec["mode"] == "auto"
    assert "bogus" not in spec and "unknownTop" not in created.body
    assert spec["extra"] == {"free": {"form": 1}}


def test_strict_field_validation_rejects_unknown_fields(kube: Kube, ns: str) -> None:
    got = kube.post(f"{WIDGETS}/namespaces/{ns}/widgets", widget("w", bogus="x"),
                    query={"fieldValidation": "Strict"})
    assert got.status == 400 and "bogus" in got.body["message"]


def test_invalid_object_is_422_listing_every_field(kube: Kube, ns: str) -> None:
    body = widget("w", size=99, color="purple", replicas="many")
    got = kube.post(f"{WIDGETS}/namespaces/{ns}/widgets", body)
    assert got.status == 422 and got.body["reason"] == "Invalid"
    fields = {c["field"] for c in got.body["details"]["causes"]}
    assert {"spec.size", "spec.color", "spec.replicas"} <= fields
    missing = widget("w2")
    missing["spec"] = {"color": "red"}
    got = kube.post(f"{WIDGETS}/namespaces/{ns}/widgets", missing)
    assert got.status == 422 and "spec.size" in {c["field"] for c in got.body["details"]["causes"]}
    bad_name = widget("Not_A_Name")
    assert kube.post(f"{WIDGETS}/namespaces/{ns}/widgets", bad_name).status == 422


def test_cross_field_rules_of_wasmfleet_kinds_are_enforced(kube: Kube, ns: str) -> None:
    """The CRDs state these as CEL rules; a real cluster evaluates CEL, the embedded server the models."""
    path = f"/apis/runtime.wasmcloud.dev/v1alpha1/namespaces/{ns}/workloads"
    body = {"apiVersion": "runtime.wasmcloud.dev/v1alpha1", "kind": "Workload", "metadata": {"name": "v"},
            "spec": {"components": [{"name": "c", "image": "ghcr.io/example/c:1"}],
                     "volumes": [{"name": "data", "ephemeral": {}, "hostPath": {"path": "/tmp"}}]}}
    got = kube.post(path, body)
    assert got.status == 422, got.body
    assert "spec.volumes[0]" in {c["field"] for c in got.body["details"]["causes"]}
    body["spec"]["volumes"] = [{"name": "data", "ephemeral": {}}]
    body["metadata"]["finalizers"] = ["contract.wasmfleet.dev/hold"]
    assert kube.post(path, body).status == 201
    assert kube.delete(f"{path}/v").status in (200, 202)
    held = kube.get(f"{path}/v").body
    assert held["metadata"]["deletionTimestamp"]
    assert kube.patch(f"{path}/v", {"metadata": {"finalizers": None}}).status == 200


def test_builtin_kinds_are_validated_and_pruned(kube: Kube, ns: str) -> None:
    cms = f"/api/v1/namespaces/{ns}/configmaps"
    assert kube.post(cms, {"metadata": {"name": "bad"}, "data": {"a": {"nested": 1}}}).status in (400, 422)
    created = kube.post(cms, {"metadata": {"name": "ok"}, "data": {"a": "b"}, "bogus": 1})
    assert created.status == 201 and "bogus" not in created.body
    secret = {"metadata": {"name": "s"}, "data": {"a": "!!not base64!!"}}
    assert kube.post(f"/api/v1/namespaces/{ns}/secrets", secret).status in (400, 422)
    assert kube.post("/api/v1/namespaces", {"metadata": {"name": "has.dots"}}).status == 422
