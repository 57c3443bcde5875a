"""CRDs: the committed deploy/crds match what the models generate; every schema is structural;
printer columns, short names and subresources are as upstream; every CEL rule in deploy/crds compiles
and type-checks on Google's CEL against the type Kubernetes derives from the schema node that carries it
(escaped property names included), and that check does fail on `self.namespace`, as kube-apiserver 1.28
did on our first CRDs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from wasmfleet.api import celrules, crds

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
    assert all("__namespace__" in r["rule"] and ".namespace" not in r["rule"] for r in rules)
    assert spec["properties"]["components"]["items"]["properties"]["imagePullPolicy"]["default"] == "IfNotPresent"


def committed_crds() -> list[dict[str, Any]]:
    return [yaml.safe_load(p.read_text()) for p in sorted(CRD_DIR.glob("*.yaml"))]


def rule_count(node: Any) -> int:
    if isinstance(node, dict):
        return len(node.get("x-kubernetes-validations") or []) + sum(rule_count(v) for v in node.values())
    return sum(rule_count(v) for v in node) if isinstance(node, list) else 0


@pytest.mark.parametrize("definition", committed_crds(), ids=lambda d: d["metadata"]["name"])
def test_every_cel_rule_in_deploy_crds_compiles_and_type_checks(definition: dict[str, Any]) -> None:
    for version in definition["spec"]["versions"]:
        schema = version["schema"]["openAPIV3Schema"]
        compiled = celrules.CompiledRules(schema, "openAPIV3Schema")  # uncached: a fresh compile
        assert [(p.field, p.error) for p in compiled.problems] == []
        assert compiled.count == rule_count(schema)


def test_the_check_fails_on_a_reserved_word_used_unescaped() -> None:
    """The exact mistake kube-apiserver 1.28 refused: `namespace` is a CEL reserved word."""
    schema = {"type": "object", "properties": {"spec": {"type": "object", "properties": {
        "entries": {"type": "array", "items": {"type": "object", "properties": {
            "namespace": {"type": "string"}, "package": {"type": "string"}}},
            "x-kubernetes-validations": [
                {"rule": "self.all(a, self.exists_one(b, a.namespace == b.namespace))", "message": "unique"},
                {"rule": "self.all(a, a.__package__ != '')", "message": "escaped names compile"},
            ]}}}}}
    compiled = celrules.CompiledRules(schema, "openAPIV3Schema")
    assert [p.field for p in compiled.problems] == [
        "openAPIV3Schema.properties[spec].properties[entries].x-kubernetes-validations[0].rule"]
    assert "compilation failed: ERROR: <input>:1:33: undefined field 'namespace'" in compiled.problems[0].error
    assert compiled.count == 1


def test_a_type_error_and_an_unknown_field_fail_the_check() -> None:
    schema = {"type": "object", "properties": {"replicas": {"type": "integer"}},
              "x-kubernetes-validations": [{"rule": "self.replicas == 'three'"}, {"rule": "self.replica > 0"},
                                           {"rule": "self.replicas"}]}
    problems = celrules.CompiledRules(schema, "openAPIV3Schema").problems
    assert len(problems) == 3
    assert "no matching overload" in problems[0].error
    assert "undefined field 'replica'" in problems[1].error
    assert "must evaluate to a bool" in problems[2].error
