"""The embedded API server validates like kube-apiserver: every field error in one 422 (metadata, schema,
then CEL, with kube's notice when a blocking schema error stops the CEL rules); its CEL messages are the
ones `wasmfleet validate` prints offline for the same manifest; a CRD whose rule does not compile is
refused with 422 naming the rule and the compile error."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from apiserver_support import endpoint

from wasmfleet.api import validation
from wasmfleet.testing.apiserver import ApiServerProcess

API = "/apis/runtime.wasmcloud.dev/v1alpha1/namespaces/default"
CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
NOT_CHECKED = ('Invalid value: "null": some validation rules were not checked because the object was invalid; '
               "correct the existing errors to complete validation")


async def post(server: ApiServerProcess, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    url, headers, ctx = endpoint(server.kubeconfig)
    async with aiohttp.ClientSession(headers=headers) as session, \
            session.post(url + path, ssl=ctx, json=body) as resp:
        return resp.status, await resp.json()


def replica_set(name: str, replicas: Any, components: list[dict[str, Any]]) -> dict[str, Any]:
    return {"apiVersion": "runtime.wasmcloud.dev/v1alpha1", "kind": "WorkloadReplicaSet", "metadata": {"name": name},
            "spec": {"replicas": replicas, "template": {"spec": {"components": components}}}}


async def test_three_errors_come_back_in_one_422_in_kubes_form(server: ApiServerProcess) -> None:
    body = replica_set("Bad_Name", "three", [{"name": "a"}])
    status, payload = await post(server, f"{API}/workloadreplicasets", body)
    assert status == 422 and payload["reason"] == "Invalid", payload
    causes = payload["details"]["causes"]
    assert [(c["field"], c["reason"]) for c in causes] == [
        ("metadata.name", "FieldValueInvalid"),
        ("spec.replicas", "FieldValueTypeInvalid"),
        ("spec.template.spec.components[0].image", "FieldValueRequired"),
        ("<nil>", "FieldValueInvalid"),  # the type error is blocking: the CEL rules were not run
    ]
    assert causes[3]["message"] == NOT_CHECKED
    joined = ", ".join(f"{c['field']}: {c['message']}" for c in causes)
    assert payload["message"] == f'WorkloadReplicaSet.runtime.wasmcloud.dev "Bad_Name" is invalid: [{joined}]'


async def test_non_blocking_schema_errors_and_cel_errors_are_reported_together(server: ApiServerProcess) -> None:
    body = replica_set("Bad_Name", 1, [{"name": "a", "image": "x", "poolSize": -1},
                                       {"name": "a", "image": "y"}])
    status, payload = await post(server, f"{API}/workloadreplicasets", body)
    assert status == 422, payload
    assert [c["field"] for c in payload["details"]["causes"]] == [
        "metadata.name", "spec.template.spec.components[0].poolSize", "spec.template.spec.components"]


MANIFESTS = {
    "volume-two-sources": {"components": [{"name": "c", "image": "x"}],
                           "volumes": [{"name": "v", "ephemeral": {}, "hostPath": {"path": "/t"}}]},
    "unnamed-shared-interfaces": {"components": [{"name": "c", "image": "x"}], "hostInterfaces": [
        {"namespace": "wasi", "package": "keyvalue", "interfaces": ["store"]},
        {"namespace": "wasi", "package": "keyvalue", "interfaces": ["atomics"], "name": "b"}]},
    "nothing-to-run": {"components": []},
    "mount-without-volume": {"components": [{"name": "c", "image": "x", "localResources": {
        "volumeMounts": [{"name": "data", "mountPath": "/d"}]}}]},
}


@pytest.mark.parametrize("spec", MANIFESTS.values(), ids=MANIFESTS.keys())
async def test_validate_reports_what_the_server_reports(server: ApiServerProcess, spec: dict[str, Any]) -> None:
    """One statement of each rule: the CEL in the CRD, evaluated by the server and by `wasmfleet validate`."""
    body = {"apiVersion": "runtime.wasmcloud.dev/v1alpha1", "kind": "Workload", "metadata": {"name": "w"},
            "spec": spec}
    offline = [(e.path, e.message) for e in validation.validate_object(body)]
    status, payload = await post(server, f"{API}/workloads", body)
    assert status == 422, payload
    assert offline and offline == [(c["field"], c["message"]) for c in payload["details"]["causes"]]


async def test_a_crd_whose_rule_does_not_compile_is_refused(server: ApiServerProcess) -> None:
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": "gadgets.cel.wasmfleet.dev"},
           "spec": {"group": "cel.wasmfleet.dev", "scope": "Namespaced",
                    "names": {"plural": "gadgets", "kind": "Gadget"},
                    "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                        "type": "object", "properties": {"spec": {
                            "type": "object", "properties": {"namespace": {"type": "string"}},
                            "x-kubernetes-validations": [{"rule": "self.namespace != ''"}]}}}}}]}}
    status, payload = await post(server, CRDS, crd)
    assert status == 422, payload
    (cause,) = payload["details"]["causes"]
    assert cause["field"] == ("spec.versions[0].schema.openAPIV3Schema.properties[spec]"
                              ".x-kubernetes-validations[0].rule")
    assert "self.namespace != ''" in cause["message"]
    assert "compilation failed: ERROR: <input>:1:5: undefined field 'namespace'" in cause["message"]
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]  # type: ignore[index]
    spec["x-kubernetes-validations"] = [{"rule": "self.__namespace__ != ''"}]
    status, payload = await post(server, CRDS, crd)
    assert status == 201, payload


async def test_too_long_and_too_many_are_kubes_blocking_errors(server: ApiServerProcess) -> None:
    components = [{"name": f"c{i}", "image": "x"} for i in range(33)]
    hi = [{"namespace": "wasi", "package": "http", "interfaces": ["incoming-handler"], "version": "1" * 65}]
    body = {"apiVersion": "runtime.wasmcloud.dev/v1alpha1", "kind": "Workload", "metadata": {"name": "big"},
            "spec": {"components": components, "hostInterfaces": hi}}
    status, payload = await post(server, f"{API}/workloads", body)
    assert status == 422, payload
    assert [(c["field"], c["reason"], c["message"]) for c in payload["details"]["causes"]] == [
        ("spec.components", "FieldValueTooMany", "Too many: 33: must have at most 32 items"),
        ("spec.hostInterfaces[0].version", "FieldValueTooLong", "Too long: may not be longer than 64"),
        ("<nil>", "FieldValueInvalid", NOT_CHECKED),
    ]
