"""Schema validation against the CRD's openAPIV3Schema: defaults applied, unknown fields pruned, and
invalid objects answered with 422 listing every field at fault; the CEL rules of the wasmfleet CRDs and
of a CRD posted at runtime (a transition rule on oldSelf, a messageExpression, an escaped reserved word)
are enforced; a CRD whose rule does not compile is refused."""

from __future__ import annotations

from typing import Any

from contract_client import Kube
from contract_support import GROUP, WIDGETS, _install_crd, widget


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
    """The CRDs state these as CEL rules; every server evaluates them."""
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


GAUGE_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": f"gauges.{GROUP}"},
    "spec": {
        "group": GROUP, "scope": "Namespaced",
        "names": {"plural": "gauges", "singular": "gauge", "kind": "Gauge"},
        "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
            "type": "object",
            "properties": {"spec": {
                "type": "object",
                "properties": {"min": {"type": "integer"}, "max": {"type": "integer"}, "mode": {"type": "string"},
                               "namespace": {"type": "string"}},
                "x-kubernetes-validations": [
                    {"rule": "self.min <= self.max",
                     "messageExpression": "'min ' + string(self.min) + ' exceeds max ' + string(self.max)"},
                    {"rule": "self.mode == oldSelf.mode", "message": "mode is immutable"},
                    {"rule": "!has(self.__namespace__) || self.__namespace__ != 'kube-system'",
                     "message": "not in kube-system"},
                ],
            }},
        }}}],
    },
}


def gauge(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/v1", "kind": "Gauge", "metadata": {"name": name},
            "spec": {"min": 1, "max": 5, "mode": "fast", **spec}}


def causes(got: Any) -> list[tuple[str, str]]:
    return [(c.get("field", ""), c["message"]) for c in got.body["details"]["causes"]]


def test_cel_rules_of_a_crd_posted_at_runtime_are_enforced(kube: Kube, ns: str) -> None:
    _install_crd(kube, GAUGE_CRD)
    path = f"{WIDGETS}/namespaces/{ns}/gauges"
    got = kube.post(path, gauge("g", min=7, max=3))
    assert got.status == 422, got.body
    assert [f for f, _ in causes(got)] == ["spec"] and "min 7 exceeds max 3" in causes(got)[0][1]
    got = kube.post(path, gauge("g", namespace="kube-system"))
    assert got.status == 422 and "not in kube-system" in causes(got)[0][1]
    created = kube.post(path, gauge("g"))  # the transition rule does not run on create
    assert created.status == 201, created.body
    got = kube.patch(f"{path}/g", {"spec": {"mode": "slow"}})
    assert got.status == 422 and "mode is immutable" in causes(got)[0][1], got.body
    assert kube.patch(f"{path}/g", {"spec": {"max": 9}}).status == 200


def test_a_crd_whose_rule_does_not_compile_is_refused(kube: Kube) -> None:
    bad: dict[str, Any] = {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": f"dials.{GROUP}"},
        "spec": {"group": GROUP, "scope": "Namespaced", "names": {"plural": "dials", "kind": "Dial"},
                 "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                     "type": "object", "properties": {"spec": {
                         "type": "object", "properties": {"namespace": {"type": "string"}},
                         "x-kubernetes-validations": [{"rule": "self.namespace == 'a'"}]}}}}}]},
    }
    got = kube.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", bad)
    assert got.status == 422, got.body
    (field, message), = causes(got)
    assert field.endswith("properties[spec].x-kubernetes-validations[0].rule")
    assert "undefined field 'namespace'" in message
