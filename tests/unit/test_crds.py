"""CRDs: the committed deploy/crds match what the models generate; every schema is structural;
printer columns, short names and subresources are as upstream."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from wasmfleet.api import crds

CRD_DIR = Path(__file__).resolve().parents[2] / "deploy" / "crds"


@pytest.mark.parametrize("definition", crds.all_crds(), ids=crds.file_name)
def test_committed_crd_matches_the_models(definition: dict[str, Any]) -> None:
    committed = (CRD_DIR / crds.file_name(definition)).read_text()
    assert committed == crds.to_yaml(definition), "run `wasmfleet crds --write deploy/crds` and commit"


def test_no_stray_crd_files() -> None:
    assert sorted(p.name for p in CRD_DIR.glob("*.yaml")) == sorted(crds.file_name(d) for d in crds.all_crds())


def walk(node: dict[str, Any], path: str = "") -> list[str]:
    """Return the paths of schema nodes that break the structural-schema rules."""
    bad = []
    if "type" not in node and not node.get("x-kubernetes-preserve-unknown-fields"):
        bad.append(f"{path}: no type")
    for forbidden in ("$ref", "anyOf", "oneOf", "allOf", "$defs", "title"):
        if forbidden in node:
            bad.append(f"{path}: {forbidden}")
    if "properties" in node and "additionalProperties" in node:
        bad.append(f"{path}: properties with additionalProperties")
    for name, sub in node.get("properties", {}).items():
        bad += walk(sub, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        bad += walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        bad += walk(node["additionalProperties"], f"{path}{{}}")
    return bad


@pytest.mark.parametrize("definition", crds.all_crds(), ids=crds.file_name)
def test_schemas_are_structural(definition: dict[str, Any]) -> None:
    schema = definition["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert walk(schema) == []


def columns(kind: str) -> list[str]:
    return [c["name"] for c in crds.crd(kind)["spec"]["versions"][0]["additionalPrinterColumns"]]


def test_printer_columns() -> None:
    assert columns("Host") == ["HOSTID", "HOSTGROUP", "ENVIRONMENT", "READY", "AGE"]
    assert columns("Workload") == ["HOSTID", "ENVIRONMENT", "READY", "AGE"]


def test_scale_subresource_and_short_names() -> None:
    wd = crds.crd("WorkloadDeployment")["spec"]
    assert wd["versions"][0]["subresources"]["scale"] == {
        "specReplicasPath": ".spec.replicas",
        "statusReplicasPath": ".status.currentReplicas",
        "labelSelectorPath": ".status.selector",
    }
    assert crds.crd("Workload")["spec"]["names"]["shortNames"] == ["ww"]


def test_host_interface_rules_travel_as_cel() -> None:
    spec = crds.crd("Workload")["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    rules = spec["properties"]["hostInterfaces"]["x-kubernetes-validations"]
    assert any("must have a name" in r["message"] for r in rules)
    assert spec["properties"]["components"]["items"]["properties"]["imagePullPolicy"]["default"] == "IfNotPresent"
