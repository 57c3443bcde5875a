"""Finalizers keep a deleted object (with deletionTimestamp) until the last one is removed; garbage
collection deletes dependents of a deleted owner (background and foreground) or orphans them when asked."""

from __future__ import annotations

import secrets
from typing import Any

from contract_client import Kube
from contract_support import GROUP, WIDGETS, wait_until, widget


def test_finalizer_holds_deletion_until_removed(kube: Kube, ns: str) -> None:
    path = f"{WIDGETS}/namespaces/{ns}/widgets/f"
    body = widget("f")
    body["metadata"]["finalizers"] = ["contract.wasmfleet.dev/hold"]
    kube.post(f"{WIDGETS}/namespaces/{ns}/widgets", body)
    deleting = kube.delete(path)
    assert deleting.status in (200, 202)
    got = kube.get(path)
    assert got.status == 200 and got.body["metadata"]["deletionTimestamp"]
    assert got.body["metadata"]["finalizers"] == ["contract.wasmfleet.dev/hold"]
    released = kube.patch(path, {"metadata": {"finalizers": None}})
    assert released.status == 200
    wait_until(lambda: kube.get(path).status == 404)


def _owner_and_dependents(kube: Kube, ns: str, name: str) -> tuple[str, list[str]]:
    owner = kube.post(f"{WIDGETS}/namespaces/{ns}/widgets", widget(name)).body
    ref = {"apiVersion": f"{GROUP}/v1", "kind": "Widget", "name": name, "uid": owner["metadata"]["uid"],
           "blockOwnerDeletion": True}
    deps = []
    for i in range(2):
        dep: dict[str, Any] = {"metadata": {"name": f"{name}-dep{i}", "ownerReferences": [ref]}, "data": {"i": str(i)}}
        assert kube.post(f"/api/v1/namespaces/{ns}/configmaps", dep).status == 201
        deps.append(f"/api/v1/namespaces/{ns}/configmaps/{name}-dep{i}")
    return f"{WIDGETS}/namespaces/{ns}/widgets/{name}", deps


def test_background_deletion_removes_dependents(kube: Kube, ns: str) -> None:
    owner, deps = _owner_and_dependents(kube, ns, "bg")
    assert kube.delete(owner, {"propagationPolicy": "Background"}).status in (200, 202)
    wait_until(lambda: all(kube.get(d).status == 404 for d in deps), 60, 0.1)


def test_foreground_deletion_waits_for_dependents(kube: Kube, ns: str) -> None:
    owner, deps = _owner_and_dependents(kube, ns, "fg")
    assert kube.delete(owner, {"propagationPolicy": "Foreground"}).status in (200, 202)
    wait_until(lambda: kube.get(owner).status == 404, 60, 0.1)
    assert all(kube.get(d).status == 404 for d in deps)


def test_orphan_deletion_keeps_dependents_without_the_reference(kube: Kube, ns: str) -> None:
    owner, deps = _owner_and_dependents(kube, ns, "or")
    assert kube.delete(owner, {"propagationPolicy": "Orphan"}).status in (200, 202)
    wait_until(lambda: kube.get(owner).status == 404, 60, 0.1)
    for d in deps:
        got = kube.get(d)
        assert got.status == 200 and not got.body["metadata"].get("ownerReferences")


def test_deleting_a_namespace_deletes_its_content(kube: Kube) -> None:
    name = f"ct-teardown-{secrets.token_hex(4)}"
    assert kube.post("/api/v1/namespaces", {"metadata": {"name": name}}).status == 201
    assert kube.post(f"/api/v1/namespaces/{name}/configmaps", {"metadata": {"name": "c"}}).status == 201
    assert kube.post(f"{WIDGETS}/namespaces/{name}/widgets", widget("w")).status == 201
    assert kube.delete(f"/api/v1/namespaces/{name}").status in (200, 202)
    terminating = kube.get(f"/api/v1/namespaces/{name}")
    assert terminating.status == 404 or terminating.body["status"]["phase"] == "Terminating"
    wait_until(lambda: kube.get(f"/api/v1/namespaces/{name}").status == 404, 120, 0.2)
    assert kube.get(f"{WIDGETS}/namespaces/{name}/widgets/w").status == 404
