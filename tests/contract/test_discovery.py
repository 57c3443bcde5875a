"""Discovery and OpenAPI: /version, /api, /apis, APIResourceLists (verbs, kinds, shortNames,
subresources), /openapi/v3 root and group-version documents with the kinds' schemas and the CRDs'
field descriptions."""

from __future__ import annotations

from typing import Any

from contract_client import Kube
from contract_support import GROUP, WIDGETS, wait_until


def test_version_and_group_lists(kube: Kube) -> None:
    version = kube.get("/version")
    assert version.status == 200 and version.body["major"] == "1" and version.body["gitVersion"]
    core = kube.get("/api")
    assert core.status == 200 and core.body["kind"] == "APIVersions" and "v1" in core.body["versions"]
    groups = kube.get("/apis")
    names = {g["name"] for g in groups.body["groups"]}
    assert {"apiextensions.k8s.io", "coordination.k8s.io", "discovery.k8s.io", "events.k8s.io",
            "runtime.wasmcloud.dev", GROUP} <= names
    group = kube.get(f"/apis/{GROUP}")
    assert group.status == 200 and group.body["preferredVersion"]["version"] == "v1"


def test_resource_lists_carry_verbs_kinds_short_names_and_subresources(kube: Kube) -> None:
    core = {r["name"]: r for r in kube.get("/api/v1").body["resources"]}
    assert core["configmaps"]["kind"] == "ConfigMap" and "cm" in core["configmaps"]["shortNames"]
    assert {"create", "get", "list", "watch", "patch", "update", "delete"} <= set(core["configmaps"]["verbs"])
    assert core["namespaces"]["namespaced"] is False
    widgets = {r["name"]: r for r in kube.get(WIDGETS).body["resources"]}
    assert widgets["widgets"]["kind"] == "Widget" and widgets["widgets"]["shortNames"] == ["wdg"]
    assert widgets["widgets"]["namespaced"] is True
    assert set(widgets["widgets/status"]["verbs"]) >= {"get", "patch", "update"}
    assert widgets["widgets/scale"]["kind"] == "Scale" and widgets["widgets/scale"]["group"] == "autoscaling"
    runtime = {r["name"]: r for r in kube.get("/apis/runtime.wasmcloud.dev/v1alpha1").body["resources"]}
    assert {"artifacts", "hosts", "workloads", "workloadreplicasets", "workloaddeployments"} <= set(runtime)


def _published_schema(kube: Kube, group: str, version: str, kind: str) -> dict[str, Any] | None:
    root = kube.get("/openapi/v3")
    assert root.status == 200
    entry = root.body["paths"].get(f"apis/{group}/{version}")
    if entry is None:
        return None
    doc = kube.get(entry["serverRelativeURL"].split("?")[0])
    assert doc.status == 200
    gvk = {"group": group, "version": version, "kind": kind}
    schemas = doc.body["components"]["schemas"].values()
    return next((s for s in schemas if gvk in s.get("x-kubernetes-group-version-kind", [])), None)


def test_openapi_v3_describes_the_kinds(kube: Kube) -> None:
    # A real cluster publishes a new CRD's schema asynchronously (its OpenAPI controller), so wait for it.
    widget = wait_until(lambda: _published_schema(kube, GROUP, "v1", "Widget"), 60, 0.5)
    assert widget["properties"]["spec"]["properties"]["size"]["type"] == "integer"


def test_openapi_v3_carries_the_crd_descriptions(kube: Kube) -> None:
    """What `kubectl explain` prints: the descriptions written in the CRD's schema, at every level."""
    # A cluster publishes an updated CRD's OpenAPI asynchronously too: wait for the described version.
    def described() -> dict[str, Any] | None:
        wd = _published_schema(kube, "runtime.wasmcloud.dev", "v1alpha1", "WorkloadDeployment")
        return wd if wd and wd["properties"]["spec"].get("description") else None

    wd = wait_until(described, 60, 0.5)
    spec = wd["properties"]["spec"]
    assert wd["description"] and spec["description"] and spec["properties"]["replicas"]["description"]
    component = spec["properties"]["template"]["properties"]["spec"]["properties"]["components"]["items"]
    assert component["properties"]["image"]["description"]


def test_unknown_paths_are_404(kube: Kube) -> None:
    assert kube.get("/apis/nonexistent.example.com/v1").status == 404
    assert kube.get("/api/v1/nonexistents").status == 404
    assert kube.get(f"{WIDGETS}/namespaces/default/widgets/x/nonexistent").status == 404
