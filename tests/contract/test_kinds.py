"""Every kind wasmfleet relies on is served: core Namespace/ConfigMap/Secret/Event/Service, events.k8s.io
Event, Lease, EndpointSlice, the five runtime.wasmcloud.dev kinds, a CRD posted at runtime (all served
versions show the same objects; deleting it deletes them), and the usual namespaces exist."""

from __future__ import annotations

import secrets
from typing import Any

import pytest
from contract_client import Kube
from contract_support import wait_until

BUILTINS = [
    ("/api/v1", "configmaps", {"kind": "ConfigMap", "apiVersion": "v1", "data": {"a": "b"}}),
    ("/api/v1", "secrets", {"kind": "Secret", "apiVersion": "v1", "stringData": {"a": "b"}}),
    ("/api/v1", "services", {"kind": "Service", "apiVersion": "v1",
                             "spec": {"ports": [{"port": 80, "protocol": "TCP"}], "selector": {"app": "x"}}}),
    ("/api/v1", "events", {"kind": "Event", "apiVersion": "v1", "reason": "Tested", "message": "m", "type": "Normal",
                           "involvedObject": {"kind": "ConfigMap", "name": "x", "namespace": "NS"}}),
    ("/apis/events.k8s.io/v1", "events", {"kind": "Event", "apiVersion": "events.k8s.io/v1", "reason": "Tested",
                                          "note": "n", "type": "Normal", "action": "Test",
                                          "eventTime": "2026-01-01T00:00:00.000000Z",
                                          "reportingController": "contract", "reportingInstance": "i",
                                          "regarding": {"kind": "ConfigMap", "name": "x", "namespace": "NS"}}),
    ("/apis/coordination.k8s.io/v1", "leases", {"kind": "Lease", "apiVersion": "coordination.k8s.io/v1",
                                                "spec": {"holderIdentity": "me", "leaseDurationSeconds": 15}}),
    ("/apis/discovery.k8s.io/v1", "endpointslices", {
        "kind": "EndpointSlice", "apiVersion": "discovery.k8s.io/v1", "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.0.0.1"]}], "ports": [{"port": 80, "protocol": "TCP", "name": "http"}]}),
]


@pytest.mark.parametrize(("prefix", "plural", "body"), BUILTINS, ids=[f"{p}/{r}" for p, r, _ in BUILTINS])
def test_builtin_kind_round_trips(kube: Kube, ns: str, prefix: str, plural: str, body: dict) -> None:
    body = dict(body, metadata={"name": "one"})
    for key in ("involvedObject", "regarding"):
        if key in body:
            body[key] = dict(body[key], namespace=ns)
    created = kube.post(f"{prefix}/namespaces/{ns}/{plural}", body)
    assert created.status == 201, created.body
    got = kube.get(f"{prefix}/namespaces/{ns}/{plural}/one")
    assert got.status == 200 and got.body["kind"] == body["kind"]
    if plural == "secrets":
        assert got.body["data"] == {"a": "Yg=="} and got.body["type"] == "Opaque"
    # A real cluster puts its own objects in every namespace (the kube-root-ca.crt ConfigMap, a default
    # ServiceAccount, their events): look only for ours.
    listed = kube.get(f"{prefix}/namespaces/{ns}/{plural}")
    assert listed.status == 200 and listed.body["kind"] == f"{body['kind']}List"
    ours = [i for i in listed.body["items"] if i["metadata"]["name"] == "one"]
    assert len(ours) == 1 and ours[0]["metadata"]["uid"] == created.body["metadata"]["uid"]


def test_runtime_wasmcloud_kinds_accept_their_examples(kube: Kube, ns: str) -> None:
    body = {"apiVersion": "runtime.wasmcloud.dev/v1alpha1", "kind": "Artifact", "metadata": {"name": "a"},
            "spec": {"image": "ghcr.io/wasmcloud/components/http-hello-world-rust:0.1.0"}}
    created = kube.post(f"/apis/runtime.wasmcloud.dev/v1alpha1/namespaces/{ns}/artifacts", body)
    assert created.status == 201, created.body
    for plural in ("hosts", "workloads", "workloadreplicasets", "workloaddeployments"):
        assert kube.get(f"/apis/runtime.wasmcloud.dev/v1alpha1/namespaces/{ns}/{plural}").status == 200


def _gadget_crd(group: str) -> dict[str, Any]:
    schema = {"openAPIV3Schema": {"type": "object", "properties": {
        "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}}
    return {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": f"gadgets.{group}"},
        "spec": {"group": group, "scope": "Namespaced",
                 "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
                 "versions": [{"name": "v1", "served": True, "storage": True, "schema": schema},
                              {"name": "v2", "served": True, "storage": False, "schema": schema}]},
    }


def test_crd_posted_at_runtime_is_served_then_removed_with_its_objects(kube: Kube, ns: str) -> None:
    group = f"g{secrets.token_hex(3)}.contract.wasmfleet.dev"
    crd_path = f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/gadgets.{group}"
    assert kube.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", _gadget_crd(group)).status == 201
    path = f"/apis/{group}/v1/namespaces/{ns}/gadgets"

    def created() -> bool:
        got = kube.post(path, {"apiVersion": f"{group}/v1", "kind": "Gadget", "metadata": {"name": "g1"},
                               "spec": {"anything": [1, 2]}})
        return got.status == 201

    wait_until(created, 30, 0.2)
    assert kube.get(f"{path}/g1").body["spec"] == {"anything": [1, 2]}
    # Conversion "None": every served version shows the same object, only apiVersion differs.
    v2 = kube.get(f"/apis/{group}/v2/namespaces/{ns}/gadgets/g1")
    assert v2.status == 200 and v2.body["apiVersion"] == f"{group}/v2" and v2.body["spec"] == {"anything": [1, 2]}
    assert kube.delete(crd_path).status in (200, 202)
    wait_until(lambda: kube.get(crd_path).status == 404, 60, 0.2)
    assert kube.get(f"/apis/{group}/v1").status == 404
    # Its objects went with it: the same CRD posted again serves an empty collection.
    assert kube.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", _gadget_crd(group)).status == 201
    wait_until(lambda: kube.get(path).status == 200, 30, 0.2)
    assert kube.get(f"{path}/g1").status == 404
    assert kube.delete(crd_path).status in (200, 202)
    wait_until(lambda: kube.get(crd_path).status == 404, 60, 0.2)


def test_the_usual_namespaces_exist(kube: Kube) -> None:
    for name in ("default", "kube-system", "kube-public", "kube-node-lease"):
        got = kube.get(f"/api/v1/namespaces/{name}")
        assert got.status == 200 and got.body["status"]["phase"] == "Active", name


def test_events_are_one_resource_in_two_shapes(kube: Kube, ns: str) -> None:
    body = {"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "shared"},
            "eventTime": "2026-01-01T00:00:00.000000Z", "reportingController": "contract/ctl",
            "reportingInstance": "ctl-1", "action": "Test", "reason": "Shared", "note": "hello", "type": "Normal",
            "regarding": {"kind": "ConfigMap", "name": "x", "namespace": ns}}
    assert kube.post(f"/apis/events.k8s.io/v1/namespaces/{ns}/events", body).status == 201
    core = kube.get(f"/api/v1/namespaces/{ns}/events/shared")
    assert core.status == 200 and core.body["apiVersion"] == "v1"
    assert core.body["message"] == "hello" and core.body["involvedObject"]["name"] == "x"
    listed = kube.get(f"/api/v1/namespaces/{ns}/events", query={"fieldSelector": "involvedObject.name=x"})
    assert "shared" in [e["metadata"]["name"] for e in listed.body["items"]]
    assert all(e["involvedObject"]["name"] == "x" for e in listed.body["items"])
    other = kube.get(f"/api/v1/namespaces/{ns}/events", query={"fieldSelector": "involvedObject.name=not-x"})
    assert "shared" not in [e["metadata"]["name"] for e in other.body["items"]]
    back = kube.get(f"/apis/events.k8s.io/v1/namespaces/{ns}/events/shared")
    assert back.body["note"] == "hello" and back.body["regarding"]["name"] == "x"


def test_deleting_a_configmap_answers_a_success_status(kube: Kube, ns: str) -> None:
    kube.post(f"/api/v1/namespaces/{ns}/configmaps", {"metadata": {"name": "gone"}})
    got = kube.delete(f"/api/v1/namespaces/{ns}/configmaps/gone")
    assert got.status == 200 and got.body["kind"] == "Status" and got.body["status"] == "Success"
    assert got.body["details"]["name"] == "gone" and got.body["details"]["kind"] == "configmaps"
