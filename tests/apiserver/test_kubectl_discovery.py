"""kubectl's use of discovery and OpenAPI against the embedded server: `explain` shows the CRDs' field
descriptions (every field of workloaddeployment.spec, nested fields, the kind itself); `api-resources`
lists the wasmfleet kinds with their short names; kubectl finds server-side field validation in
/openapi/v3 and sends fieldValidation=Strict, so an unknown field fails `kubectl create` unless
--validate=false."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from apiserver_support import kubectl

from wasmfleet.api import crds
from wasmfleet.testing.apiserver import ApiServerProcess


def flat(text: str) -> str:
    """kubectl wraps descriptions at its terminal width; compare with whitespace collapsed."""
    return " ".join(text.split())


def schema_at(kind: str, *path: str) -> dict[str, Any]:
    node = crds.openapi_schema(kind)
    for name in path:
        node = node["properties"][name]
        if node.get("type") == "array":
            node = node["items"]
    return node


def test_explain_spec_documents_every_field(server: ApiServerProcess) -> None:
    out = kubectl(server.kubeconfig, "explain", "workloaddeployment.spec").stdout
    assert "<no description>" not in out
    spec = schema_at("WorkloadDeployment", "spec")
    assert flat(spec["description"]) in flat(out)
    fields = spec["properties"]
    assert len(fields) >= 5
    for name, sub in fields.items():
        assert name in out
        assert flat(sub["description"]) in flat(out), name


@pytest.mark.parametrize(("kind", "path"), [
    ("WorkloadDeployment", ("spec", "template", "spec", "components", "image")),
    ("WorkloadDeployment", ("spec", "template", "spec", "hostInterfaces", "version")),
    ("Workload", ("status", "conditions", "lastTransitionTime")),
    ("Host", ("hostId",)),
])
def test_explain_nested_field_shows_its_description(server: ApiServerProcess, kind: str, path: tuple[str, ...]
                                                    ) -> None:
    out = kubectl(server.kubeconfig, "explain", ".".join((kind.lower(), *path))).stdout
    assert "DESCRIPTION:" in out and "<no description>" not in out
    assert flat(schema_at(kind, *path)["description"]) in flat(out)


def test_explain_kind_shows_the_kind_description(server: ApiServerProcess) -> None:
    out = kubectl(server.kubeconfig, "explain", "workloaddeployment").stdout
    assert flat(crds.openapi_schema("WorkloadDeployment")["description"]) in flat(out)
    assert "<no description>" not in out


def test_api_resources_lists_the_wasmfleet_kinds(server: ApiServerProcess) -> None:
    out = kubectl(server.kubeconfig, "api-resources", "--api-group=runtime.wasmcloud.dev").stdout
    rows = {line.split()[0]: line.split() for line in out.splitlines()[1:]}
    assert set(rows) == {"artifacts", "hosts", "workloads", "workloadreplicasets", "workloaddeployments"}
    assert rows["workloads"][1] == "ww" and rows["workloaddeployments"][-1] == "WorkloadDeployment"


def test_kubectl_uses_server_side_field_validation(server: ApiServerProcess, tmp_path: Path) -> None:
    manifest = tmp_path / "bad.yaml"
    manifest.write_text("apiVersion: runtime.wasmcloud.dev/v1alpha1\nkind: Artifact\n"
                        "metadata: {name: strict, namespace: default}\nspec: {image: ghcr.io/x/y:1, bogus: 1}\n")
    refused = kubectl(server.kubeconfig, "create", "-f", str(manifest), "-v=6", check=False)
    assert refused.returncode != 0 and 'unknown field "spec.bogus"' in refused.stderr
    assert "fieldValidation=Strict" in refused.stderr
    kubectl(server.kubeconfig, "create", "--validate=false", "-f", str(manifest))
    kubectl(server.kubeconfig, "delete", "artifact", "strict", "-n", "default")
