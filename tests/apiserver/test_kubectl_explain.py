"""kubectl explain against the embedded server shows the CRDs' field descriptions (served through
/openapi/v3): every field of workloaddeployment.spec, a nested field
(workloaddeployment.spec.template.spec.components.image), the kind itself, and Host's top-level fields."""

from __future__ import annotations

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
