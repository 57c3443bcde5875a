"""The compiled fast validator agrees with jsonschema on valid and invalid objects of every wasmfleet CRD
and of a schema using every keyword it compiles; pruning and defaulting follow the structural rules."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from wasmfleet.api import crds
from wasmfleet.apiserver import fastcheck
from wasmfleet.apiserver.schemas import SchemaChecker, _translate

SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["spec"],
    "properties": {"spec": {
        "type": "object",
        "required": ["n"],
        "minProperties": 1,
        "properties": {
            "n": {"type": "integer", "minimum": 1, "maximum": 5, "exclusiveMaximum": True},
            "s": {"type": "string", "minLength": 2, "maxLength": 4, "pattern": "^[a-z]+$"},
            "e": {"type": "string", "enum": ["a", "b"]},
            "l": {"type": "array", "minItems": 1, "maxItems": 3, "uniqueItems": True, "items": {"type": "integer"}},
            "m": {"type": "object", "additionalProperties": {"type": "string"}, "maxProperties": 2},
            "x": {"x-kubernetes-int-or-string": True},
            "z": {"type": "string", "nullable": True},
            "b": {"type": "boolean"},
            "f": {"type": "number"},
        },
    }},
}

OBJECTS = [
    {"spec": {"n": 1}},
    {"spec": {"n": 5}},
    {"spec": {"n": 0}},
    {"spec": {"n": True}},
    {"spec": {"n": 1.5}},
    {"spec": {}},
    {},
    {"spec": {"n": 2, "s": "abc"}},
    {"spec": {"n": 2, "s": "ABC"}},
    {"spec": {"n": 2, "s": "a"}},
    {"spec": {"n": 2, "e": "c"}},
    {"spec": {"n": 2, "l": [1, 2]}},
    {"spec": {"n": 2, "l": [1, 1]}},
    {"spec": {"n": 2, "l": []}},
    {"spec": {"n": 2, "l": ["x"]}},
    {"spec": {"n": 2, "m": {"a": "b"}}},
    {"spec": {"n": 2, "m": {"a": 1}}},
    {"spec": {"n": 2, "m": {"a": "1", "b": "2", "c": "3"}}},
    {"spec": {"n": 2, "x": 3}},
    {"spec": {"n": 2, "x": "3"}},
    {"spec": {"n": 2, "x": [3]}},
    {"spec": {"n": 2, "z": None}},
    {"spec": {"n": 2, "b": 1}},
    {"spec": {"n": 2, "f": True}},
    {"spec": {"n": 2, "f": 2}},
]


@pytest.mark.parametrize("obj", OBJECTS, ids=[str(o) for o in OBJECTS])
def test_fast_validator_agrees_with_jsonschema(obj: dict[str, Any]) -> None:
    checker = SchemaChecker(SCHEMA)
    fast = fastcheck.compile_schema(_translate(SCHEMA))
    assert fast is not None
    assert fast(copy.deepcopy(obj)) == (checker._validator.is_valid(copy.deepcopy(obj)))


def test_every_crd_schema_compiles_and_agrees_on_its_examples() -> None:
    for crd in crds.all_crds():
        schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        checker = SchemaChecker(schema)
        assert checker._fast is not None, crd["metadata"]["name"]
        for obj in ({"spec": {}}, {"spec": "nope"}, {"spec": {"replicas": "x"}}, {}):
            assert checker._fast(obj) == checker._validator.is_valid(obj), (crd["metadata"]["name"], obj)


def test_unsupported_keywords_fall_back_to_jsonschema() -> None:
    assert fastcheck.compile_schema({"type": "number", "multipleOf": 0.1}) is None
    assert fastcheck.compile_schema({"type": "object", "additionalProperties": False}) is None


def test_pruning_defaulting_and_nulls() -> None:
    checker = SchemaChecker({"type": "object", "properties": {"spec": {"type": "object", "properties": {
        "a": {"type": "integer", "default": 3},
        "keep": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
        "n": {"type": "string"},
        "obj": {"type": "object", "default": {}, "properties": {"inner": {"type": "string", "default": "d"}}},
    }}}})
    obj = {"apiVersion": "x/v1", "kind": "K", "metadata": {"name": "n"},
           "spec": {"junk": 1, "keep": {"any": {"thing": 1}}, "n": None}, "top": 1}
    pruned = checker.normalize(obj)
    assert sorted(pruned) == ["spec.junk", "top"]
    assert obj["spec"] == {"a": 3, "keep": {"any": {"thing": 1}}, "obj": {"inner": "d"}}
    assert obj["metadata"] == {"name": "n"}
