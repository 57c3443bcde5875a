"""Status and scale subresources: the main resource ignores .status, /status ignores all but status,
spec changes bump generation and status writes do not, /scale reads and writes spec.replicas."""

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
    kube.post(f"{WIDGETS}/namespaces/{ns}/widgets", widget("w", replicas=2))
    kube.patch(f"{path}/status", {"status": {"replicas": 1, "selector": "app=w"}})
    scale = kube.get(f"{path}/scale")
    assert scale.status == 200 and scale.body["kind"] == "Scale"
    assert scale.body["spec"]["replicas"] == 2 and scale.body["status"] == {"replicas": 1, "selector": "app=w"}
    patched = kube.patch(f"{path}/scale", {"spec": {"replicas": 5}})
    assert patched.status == 200 and patched.body["spec"]["replicas"] == 5
    assert kube.get(path).body["spec"]["replicas"] == 5
    scale = kube.get(f"{path}/scale").body
    scale["spec"]["replicas"] = 0
    assert kube.put(f"{path}/scale", scale).body["spec"]["replicas"] == 0
