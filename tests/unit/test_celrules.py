"""CRD validation rules on Google's CEL, with kube-apiserver's semantics: property-name escaping (at
compile time and on the data), rules on the root, objects, list items, map values and scalars; transition
rules (oldSelf) only where an old value correlates (property, map key, list-map key); message,
messageExpression, reason, fieldPath; int-or-string and number values; the root's metadata limited to
name/generateName; run-time errors and rules that do not compile reported, never raised; the strings
extension, cel.bind and Kubernetes' list and regex functions available, other Kubernetes libraries refused
at compile; one compile per schema."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from wasmfleet.api import celrules, celtypes


def compiled(spec_props: dict[str, Any], rules: list[dict[str, Any]] | None = None, **spec_extra: Any
             ) -> celrules.CompiledRules:
    spec: dict[str, Any] = {"type": "object", "properties": spec_props, **spec_extra}
    if rules:
        spec["x-kubernetes-validations"] = rules
    got = celrules.CompiledRules({"type": "object", "properties": {"spec": spec}}, "openAPIV3Schema")
    assert [p.error for p in got.problems] == []
    return got


def found(rules: celrules.CompiledRules, spec: Any, old_spec: Any = None) -> list[tuple[str, str, str]]:
    old = None if old_spec is None else {"spec": old_spec}
    return [(v.field, v.reason, v.message) for v in rules.validate({"spec": spec}, old)]


@pytest.mark.parametrize(("name", "escaped"), [
    ("namespace", "__namespace__"), ("package", "__package__"), ("in", "__in__"), ("plain", "plain"),
    ("a__b", "a__underscores__b"), ("x.y", "x__dot__y"), ("x-y", "x__dash__y"), ("a/b", "a__slash__b"),
    ("1abc", None), ("has space", None),
])
def test_property_names_are_escaped_as_kubernetes_does(name: str, escaped: str | None) -> None:
    assert celtypes.escape(name) == escaped


def test_escaped_names_reach_the_json_fields() -> None:
    rules = compiled({"namespace": {"type": "string"}, "x-y": {"type": "integer"}},
                     [{"rule": "self.__namespace__ == 'prod' && self.x__dash__y > 1", "message": "no"}])
    assert found(rules, {"namespace": "prod", "x-y": 2}) == []
    assert found(rules, {"namespace": "dev", "x-y": 2}) == [
        ("spec", "FieldValueInvalid", 'Invalid value: "object": no')]


def test_a_transition_rule_runs_only_on_update() -> None:
    rules = compiled({"replicas": {"type": "integer"}},
                     [{"rule": "self.replicas >= oldSelf.replicas", "message": "may not shrink"}])
    assert found(rules, {"replicas": 1}) == []  # create: no oldSelf, rule skipped
    assert found(rules, {"replicas": 3}, {"replicas": 2}) == []
    assert found(rules, {"replicas": 1}, {"replicas": 2}) == [
        ("spec", "FieldValueInvalid", 'Invalid value: "object": may not shrink')]


def test_message_expression_reason_and_field_path() -> None:
    rules = compiled({"replicas": {"type": "integer"}, "name": {"type": "string"}}, [
        {"rule": "self.replicas <= 5", "messageExpression": "'at most 5 replicas, not ' + string(self.replicas)",
         "message": "static", "reason": "FieldValueForbidden", "fieldPath": ".replicas"},
        {"rule": "has(self.name)", "reason": "FieldValueRequired", "fieldPath": ".name", "message": "give a name"},
        {"rule": "self.replicas != 7", "reason": "FieldValueDuplicate"},
        {"rule": "self.replicas != 7"},
    ])
    assert found(rules, {"replicas": 7}) == [
        ("spec.replicas", "FieldValueForbidden", "Forbidden: at most 5 replicas, not 7"),
        ("spec.name", "FieldValueRequired", "Required value: give a name"),
        ("spec", "FieldValueDuplicate", 'Duplicate value: "object"'),
        ("spec", "FieldValueInvalid", 'Invalid value: "object": failed rule: self.replicas != 7'),
    ]


def test_rules_on_list_items_map_values_and_scalars() -> None:
    rules = compiled({
        "ports": {"type": "array", "items": {"type": "integer", "x-kubernetes-validations": [
            {"rule": "self > 1024", "message": "unprivileged ports only"}]}},
        "labels": {"type": "object", "additionalProperties": {"type": "string", "x-kubernetes-validations": [
            {"rule": "self.size() <= 3", "message": "short values"}]},
            "x-kubernetes-validations": [{"rule": "!('forbidden' in self)", "message": "no forbidden key"}]},
        "host": {"type": "string", "x-kubernetes-validations": [{"rule": "self.lowerAscii() == self",
                                                                 "message": "lower case"}]},
    })
    assert found(rules, {"ports": [8080, 80], "labels": {"a": "long-value", "forbidden": "x"}, "host": "Web"}) == [
        ("spec.ports[1]", "FieldValueInvalid", 'Invalid value: "integer": unprivileged ports only'),
        ("spec.labels", "FieldValueInvalid", 'Invalid value: "object": no forbidden key'),
        ("spec.labels[a]", "FieldValueInvalid", 'Invalid value: "string": short values'),
        ("spec.host", "FieldValueInvalid", 'Invalid value: "string": lower case'),
    ]


def test_list_map_items_correlate_with_their_old_item_by_key() -> None:
    item = {"type": "object", "properties": {"name": {"type": "string"}, "size": {"type": "integer"}},
            "x-kubernetes-validations": [{"rule": "self.size >= oldSelf.size", "message": "may not shrink"}]}
    rules = compiled({"disks": {"type": "array", "items": item, "x-kubernetes-list-type": "map",
                                "x-kubernetes-list-map-keys": ["name"]}})
    old = {"disks": [{"name": "a", "size": 5}, {"name": "b", "size": 5}]}
    new = {"disks": [{"name": "b", "size": 4}, {"name": "a", "size": 6}, {"name": "c", "size": 1}]}
    assert found(rules, new, old) == [("spec.disks[0]", "FieldValueInvalid", 'Invalid value: "object": may not shrink')]
    atomic = compiled({"disks": {"type": "array", "items": item}})
    assert found(atomic, new, old) == []  # items of an atomic list have no old value


def test_int_or_string_and_numbers_sent_as_integers() -> None:
    rules = compiled({"surge": {"x-kubernetes-int-or-string": True}, "ratio": {"type": "number"}}, [
        {"rule": "type(self.surge) == int ? self.surge <= 3 : self.surge.endsWith('%')", "message": "surge"},
        {"rule": "self.ratio + 0.5 < 2.0", "message": "ratio"},
    ])
    assert found(rules, {"surge": 2, "ratio": 1}) == []
    assert found(rules, {"surge": "25%", "ratio": 1.2}) == []
    assert [f for f, _, _ in found(rules, {"surge": "25", "ratio": 2})] == ["spec", "spec"]


def test_the_root_sees_only_name_and_generate_name_of_metadata() -> None:
    schema: dict[str, Any] = {"type": "object", "properties": {"metadata": {"type": "object"}},
                              "x-kubernetes-validations": [{"rule": "self.metadata.name.startsWith('a')",
                                                            "message": "names start with a"}]}
    rules = celrules.CompiledRules(schema, "openAPIV3Schema")
    assert rules.problems == []
    assert [v.field for v in rules.validate({"metadata": {"name": "bob", "labels": {"x": "y"}}})] == [""]
    schema["x-kubernetes-validations"] = [{"rule": "has(self.metadata.labels)"}]
    problems = celrules.CompiledRules(schema, "openAPIV3Schema").problems
    assert len(problems) == 1 and "undefined field 'labels'" in problems[0].error


def test_a_run_time_error_is_a_field_error_not_an_exception() -> None:
    rules = compiled({"items": {"type": "array", "items": {"type": "string"}}},
                     [{"rule": "self.items[2] == 'x'", "message": "third item"}])
    (field, reason, message), = found(rules, {"items": ["a"]})
    assert (field, reason) == ("spec", "FieldValueInvalid")
    assert "evaluating rule: third item" in message


def test_bad_message_expression_reason_and_field_path_are_compile_problems() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "x-kubernetes-validations": [
        {"rule": "self.n > 0", "messageExpression": "self.n"},
        {"rule": "self.n > 0", "reason": "Whatever"},
        {"rule": "self.n > 0", "fieldPath": ".missing"},
        {"rule": "self.n >"},
    ]}
    problems = celrules.CompiledRules(schema, "openAPIV3Schema").problems
    assert [p.field.rsplit(".", 1)[-1] for p in problems] == ["messageExpression", "reason", "fieldPath", "rule"]
    assert "must evaluate to a string" in problems[0].error
    assert "Syntax error" in problems[3].error or "syntax" in problems[3].error.lower()


def test_preserved_unknown_objects_are_maps_and_extensions_are_available() -> None:
    rules = compiled({"extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}, [
        {"rule": "cel.bind(keys, self.extra.map(k, k.upperAscii()), !('BAD' in keys))", "message": "no bad key"},
        {"rule": "!has(self.extra.size) || self.extra.size <= 3", "message": "size"},
    ])
    assert found(rules, {"extra": {"ok": 1, "size": 2}}) == []
    assert [m for _, _, m in found(rules, {"extra": {"bad": 1, "size": 9}})] == [
        'Invalid value: "object": no bad key', 'Invalid value: "object": size']


def test_kubernetes_list_and_regex_functions() -> None:
    rules = compiled({"l": {"type": "array", "items": {"type": "integer"}}, "s": {"type": "string"}}, [
        {"rule": "self.l.isSorted()", "message": "sorted"}, {"rule": "self.l.sum() < 10", "message": "sum"},
        {"rule": "self.l.min() >= 1", "message": "min"}, {"rule": "self.l.max() <= 5", "message": "max"},
        {"rule": "self.s.find('[0-9]+') == '42'", "message": "find"},
        {"rule": "self.s.findAll('[a-z]').size() == 2 && self.s.findAll('[a-z]', 1) == ['a']", "message": "all"},
    ])
    assert found(rules, {"l": [1, 2, 3], "s": "ab42"}) == []
    assert [m.rsplit(": ", 1)[1] for _, _, m in found(rules, {"l": [3, 9, 1], "s": "xyz"})] == [
        "sorted", "sum", "max", "find", "all"]
    assert ["min called on empty list" in m for _, _, m in found(rules, {"l": [], "s": "ab42"})] == [True, False]


def test_libraries_not_provided_are_refused_not_skipped() -> None:
    schema = {"type": "object", "properties": {"u": {"type": "string"}},
              "x-kubernetes-validations": [{"rule": "url(self.u).getHost() == 'x'"}]}
    (problem,) = celrules.CompiledRules(schema, "openAPIV3Schema").problems
    assert "compilation failed" in problem.error


def test_a_schema_is_compiled_once() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}},
              "x-kubernetes-validations": [{"rule": "self.n > 0"}]}
    assert celrules.compile_schema(schema) is celrules.compile_schema(copy.deepcopy(schema))


def test_awkward_schemas_and_values_give_field_errors_not_exceptions() -> None:
    """Two map properties protobuf would name alike still compile; an integer beyond int64 is a field error."""
    maps = {"type": "object", "additionalProperties": {"type": "string"}}
    rules = compiled({"a_b": maps, "aB": maps, "n": {"type": "integer"}},
                     [{"rule": "size(self.a_b) > 0 && size(self.aB) == 0 && self.n > 0", "message": "m"}])
    assert found(rules, {"a_b": {"x": "y"}, "aB": {}, "n": 1}) == []
    (field, reason, message), = found(rules, {"a_b": {"x": "y"}, "aB": {}, "n": 2**70})
    assert (field, reason) == ("spec", "FieldValueInvalid") and "out of range" in message
