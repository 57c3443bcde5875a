"""PATCH: merge patch, JSON patch, server-side apply (apply-patch+yaml, field managers, conflicts, force),
and 415 for strategic merge on a custom resource."""

from __future__ import annotations

import yaml
from contract_client import Kube
from contract_support import WIDGETS, widget

APPLY = "application/apply-patch+yaml"


def test_merge_patch_and_json_patch(kube: Kube, ns: str) -> None:
    path = f"{WIDGETS}/namespaces/{ns}/widgets/w"
    kube.post(f"{WIDGETS}/namespaces/{ns}/widgets", widget("w", tags=["a"]))
    merged = kube.patch(path, {"spec": {"color": "red"}, "metadata": {"labels": {"x": "1"}}})
    assert merged.status == 200, merged.body
    assert merged.body["spec"]["color"] == "red" and merged.body["spec"]["size"] == 3
    assert merged.body["metadata"]["labels"] == {"x": "1"}
    removed = kube.patch(path, {"spec": {"color": None}})
    assert "color" not in removed.body["spec"]
    ops = [{"op": "add", "path": "/spec/tags/-", "value": "b"}, {"op": "replace", "path": "/spec/size", "value": 4}]
    patched = kube.patch(path, ops, ctype="application/json-patch+json")
    assert patched.status == 200 and patched.body["spec"]["tags"] == ["a", "b"] and patched.body["spec"]["size"] == 4
    failed = kube.patch(path, [{"op": "test", "path": "/spec/size", "value": 9}], ctype="application/json-patch+json")
    assert failed.status == 422


def test_strategic_merge_on_custom_resource_is_415(kube: Kube, ns: str) -> None:
    kube.post(f"{WIDGETS}/namespaces/{ns}/widgets", widget("w"))
    got = kube.patch(f"{WIDGETS}/namespaces/{ns}/widgets/w", {"spec": {"size": 2}},
                     ctype="application/strategic-merge-patch+json")
    assert got.status == 415


def test_server_side_apply_creates_updates_and_detects_conflicts(kube: Kube, ns: str) -> None:
    path = f"{WIDGETS}/namespaces/{ns}/widgets/sa"
    manifest = widget("sa", size=2, color="green")
    created = kube.patch(path, yaml.safe_dump(manifest), ctype=APPLY, query={"fieldManager": "alice"})
    assert created.status == 201, created.body
    managers = {m["manager"]: m for m in created.body["metadata"]["managedFields"]}
    assert managers["alice"]["operation"] == "Apply"
    assert "f:size" in managers["alice"]["fieldsV1"]["f:spec"]
    # Dropping a field from alice's configuration removes it from the object.
    manifest["spec"].pop("color")
    again = kube.patch(path, yaml.safe_dump(manifest), ctype=APPLY, query={"fieldManager": "alice"})
    assert again.status == 200 and "color" not in again.body["spec"]
    # Bob wants a different size: conflict unless forced.
    bob = widget("sa", size=9)
    clash = kube.patch(path, yaml.safe_dump(bob), ctype=APPLY, query={"fieldManager": "bob"})
    assert clash.status == 409 and clash.body["reason"] == "Conflict"
    forced = kube.patch(path, yaml.safe_dump(bob), ctype=APPLY, query={"fieldManager": "bob", "force": "true"})
    assert forced.status == 200 and forced.body["spec"]["size"] == 9
