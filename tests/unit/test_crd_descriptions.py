"""CRD field descriptions: every property of every generated CRD schema (and each kind's root and every
array of objects) carries a non-empty description, so `kubectl explain` documents every field; docstrings
that wrap lines become one-line descriptions."""

from __future__ import annotations

from typing import Any

import pytest

from wasmfleet.api import crds


def undocumented(node: dict[str, Any], path: str) -> list[str]:
    """Paths of schema nodes below `node` (a property or the root) that lack a description."""
    bad = [] if (node.get("description") or "").strip() else [path]
    for name, sub in node.get("properties", {}).items():
        bad += undocumented(sub, f"{path}.{name}")
    items = node.get("items")
    if isinstance(items, dict):
        if items.get("type") == "object" and items.get("properties"):
            bad += undocumented(items, f"{path}[]")
        else:  # an array of scalars: its description is the property's
            for name, sub in items.get("properties", {}).items():
                bad += undocumented(sub, f"{path}[].{name}")
    extra = node.get("additionalProperties")
    if isinstance(extra, dict):
        for name, sub in extra.get("properties", {}).items():
            bad += undocumented(sub, f"{path}{{}}.{name}")
    return bad


@pytest.mark.parametrize("definition", crds.all_crds(), ids=crds.file_name)
def test_every_field_has_a_description(definition: dict[str, Any]) -> None:
    kind = definition["spec"]["names"]["kind"]
    schema = definition["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert undocumented(schema, kind) == []


def test_the_walk_finds_a_missing_description() -> None:
    schema = {"type": "object", "description": "root", "properties": {
        "spec": {"type": "object", "description": "spec", "properties": {
            "ok": {"type": "string", "description": "fine"},
            "bad": {"type": "string"},
            "list": {"type": "array", "description": "list", "items": {"type": "object", "properties": {
                "x": {"type": "integer", "description": " "}}}}}}}}
    assert undocumented(schema, "K") == ["K.spec.bad", "K.spec.list[]", "K.spec.list[].x"]


def test_descriptions_are_single_lines_from_the_model_docstrings() -> None:
    spec = crds.openapi_schema("WorkloadDeployment")["properties"]["spec"]
    image = spec["properties"]["template"]["properties"]["spec"]["properties"]["components"]["items"][
        "properties"]["image"]["description"]
    assert "\n" not in image and image.startswith("OCI reference of the component's wasm image")
    assert spec["properties"]["replicas"]["description"] == "Number of Workloads to keep. Default 1."
