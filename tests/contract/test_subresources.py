"""Status and scale subresources: the main resource ignores .status, /status ignores all but status,
spec changes bump generation and status writes do not, /scale reads and writes spec.replicas (a Scale
at 0 has `"spec": {}`, as autoscaling/v1 omits replicas at 0), checks resourceVersion and the value."""

from __future__ import annotations

from contract_client import Kube
from contract_support import WIDGETS, widget


def test_status_subresource_splits_spec_and_status(kube: Kube, ns: str) -> None:
    path = f"{WIDGETS}/namespaces/{ns}/widgets/w"
    body = widget("w")
    body["status"] = {"phase": "ignored-on-create"}
    created = kube.post(f"{WIDGETS}/namespaces/{ns}/widgets", body).body
    assert "status" not in created or created["status"].get("phase") != "ignored-on-create"
    status = kube.patch(f"{path}/status", {"status": {"phase": "Running"}, "spec": {"size": 9}})
    assert status.status == 200
    assert status.body["status"]["phase"] == "Running" and status.body["spec"]["size"] == 3
    assert status.body["metadata"]["generation"] == 1
    main = kube.patch(path, {"status": {"phase": "Hacked"}, "spec": {"size": 4}})
    assert main.body["status"]["phase"] == "Running" and main.body["spec"]["size"] == 4
    assert main.body["metadata"]["generation"] == 2
    whole = kube.get(path).body
    whole["status"]["phase"] = "Done"
    put = kube.put(f"{path}/status", whole)
    assert put.status == 200 and put.body["status"]["phase"] == "Done" and put.body["metadata"]["generation"] == 2
    assert kube.get(f"{path}/status").body["status"]["phase"] == "Done"


def test_scale_subresource_reads_and_writes_replicas(kube: Kube, ns: str) -> None:
    path = f"{WIDGETS}/namespaces/{ns}/widgets/w"
    obj = kube.post(f"{WIDGETS}/namespaces/{ns}/widgets", widget("w", replicas=2)).body
    obj = kube.patch(f"{path}/status", {"status": {"replicas": 1, "selector": "app=w"}}).body
    scale = kube.get(f"{path}/scale")
    assert scale.status == 200 and scale.body["kind"] == "Scale" and scale.body["apiVersion"] == "autoscaling/v1"
    # kube-apiserver builds the Scale's metadata from exactly these five fields of the object.
    meta = obj["metadata"]
    assert scale.body["metadata"] == {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion",
                                                              "creationTimestamp")}
    assert scale.body["spec"] == {"replicas": 2} and scale.body["status"] == {"replicas": 1, "selector": "app=w"}
    patched = kube.patch(f"{path}/scale", {"spec": {"replicas": 5}})
    assert patched.status == 200 and patched.body["spec"]["replicas"] == 5
    after = kube.get(path).body
    assert after["spec"]["replicas"] == 5 and after["metadata"]["generation"] == 2
    assert patched.body["metadata"]["resourceVersion"] == after["metadata"]["resourceVersion"]


def test_scale_to_zero_omits_spec_replicas_and_reads_back(kube: Kube, ns: str) -> None:
    """autoscaling/v1 ScaleSpec.replicas is omitempty: at 0 a Scale has `"spec": {}`, and a Scale written
    back without replicas means 0. Readers take replicas with a default of 0, as Go clients do."""
    path = f"{WIDGETS}/namespaces/{ns}/widgets/z"
    kube.post(f"{WIDGETS}/namespaces/{ns}/widgets", widget("z", replicas=2))
    scale = kube.get(f"{path}/scale").body
    scale["spec"]["replicas"] = 0
    put = kube.put(f"{path}/scale", scale)
    assert put.status == 200, put.body
    assert put.body["spec"].get("replicas", 0) == 0 and "replicas" not in put.body["spec"]
    assert put.body["status"] == {"replicas": 0}    # status.replicas is not omitempty
    assert kube.get(path).body["spec"]["replicas"] == 0
    at_zero = kube.get(f"{path}/scale").body
    assert at_zero["spec"] == {}
    # Writing back what was read at 0 keeps 0; setting replicas on it scales up again.
    assert kube.put(f"{path}/scale", at_zero).status == 200
    assert kube.get(path).body["spec"]["replicas"] == 0
    at_zero = kube.get(f"{path}/scale").body
    at_zero["spec"]["replicas"] = 3
    assert kube.put(f"{path}/scale", at_zero).body["spec"].get("replicas", 0) == 3
    merged = kube.patch(f"{path}/scale", {"spec": {"replicas": 0}})
    assert merged.status == 200 and merged.body["spec"].get("replicas", 0) == 0
    assert kube.get(path).body["spec"]["replicas"] == 0


def test_scale_writes_check_resource_version_and_value(kube: Kube, ns: str) -> None:
    path = f"{WIDGETS}/namespaces/{ns}/widgets/c"
    kube.post(f"{WIDGETS}/namespaces/{ns}/widgets", widget("c", replicas=2))
    stale = kube.get(f"{path}/scale").body
    kube.patch(path, {"spec": {"size": 4}})
    stale["spec"]["replicas"] = 4
    conflict = kube.put(f"{path}/scale", stale)
    assert conflict.status == 409 and conflict.body["reason"] == "Conflict"
    fresh = kube.get(f"{path}/scale").body
    fresh["spec"]["replicas"] = -1
    negative = kube.put(f"{path}/scale", fresh)
    assert negative.status == 422 and negative.body["reason"] == "Invalid"
    fresh["spec"]["replicas"] = "many"
    assert kube.put(f"{path}/scale", fresh).status == 400
    assert kube.get(path).body["spec"]["replicas"] == 2
