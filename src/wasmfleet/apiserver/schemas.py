"""Structural-schema handling for custom resources: prune unknown fields, apply defaults, validate.

Pruning and defaulting follow apiextensions-apiserver (nulls dropped unless nullable, defaults applied
where a field is absent, `x-kubernetes-preserve-unknown-fields` stops pruning). Validation uses the
`jsonschema` Draft 4 validator (OpenAPI v3.0 shares its keyword semantics, e.g. boolean
exclusiveMinimum) on a copy of the schema with the OpenAPI-only keywords translated.
CEL rules (`x-kubernetes-validations`) are compiled with the schema (`api.celrules`) and evaluated by
`check_rules`, which the engine calls only when the schema check left no blocking error, as
kube-apiserver does.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import jsonschema  # type: ignore[import-untyped]

from wasmfleet.api import celrules
from wasmfleet.apiserver import fastcheck

Cause = dict[str, str]
_ROOT_KEEP = {"apiVersion", "kind", "metadata"}

# Schema errors after which kube-apiserver does not run the CEL rules (its `hasBlockingErr`): the rules
# assume the types, required fields and bounds the schema promises.
BLOCKING = frozenset({"FieldValueNotSupported", "FieldValueRequired", "FieldValueTooLong", "FieldValueTooMany",
                      "FieldValueTypeInvalid"})
RULES_NOT_CHECKED: Cause = {
    "reason": "FieldValueInvalid", "field": "<nil>",
    "message": 'Invalid value: "null": some validation rules were not checked because the object was invalid; '
               "correct the existing errors to complete validation",
}


def _is_object_schema(schema: dict[str, Any]) -> bool:
    return schema.get("type") == "object" or "properties" in schema or "additionalProperties" in schema


PathLink = tuple[Any, str] | None  # (parent link, segment): built per level, joined only when pruning


def _join(link: PathLink) -> str:
    parts: list[str] = []
    while link is not None:
        link, seg = link
        parts.append(seg)
    out = ""
    for seg in reversed(parts):
        out += seg if seg.startswith("[") or not out else "." + seg
    return out


class _Normalizer:
    """One schema node compiled for pruning and defaulting (the schema is read once, not per object)."""

    __slots__ = ("additional", "defaults", "is_object", "items", "nullable", "open", "props", "root")

    def __init__(self, schema: dict[str, Any], root: bool = False) -> None:
        self.root = root
        self.is_object = _is_object_schema(schema)
        props: dict[str, Any] = schema.get("properties") or {}
        self.props: dict[str, _Normalizer | None] = {k: _compile_node(v) for k, v in props.items()}
        self.nullable = {k for k, v in props.items() if v.get("nullable")}
        additional = schema.get("additionalProperties")
        self.additional: _Normalizer | None = _compile_node(additional) if isinstance(additional, dict) else None
        # Unknown keys survive under preserve-unknown-fields or any additionalProperties.
        preserve = bool(schema.get("x-kubernetes-preserve-unknown-fields"))
        self.open = preserve or (additional is not None and additional is not False)
        self.defaults = [(k, v["default"], self.props[k]) for k, v in props.items()
                         if "default" in v and not (root and k in _ROOT_KEEP)]
        items = schema.get("items")
        self.items: _Normalizer | None = _compile_node(items) if isinstance(items, dict) else None

    def run(self, value: Any, path: PathLink, pruned: list[str]) -> Any:
        if isinstance(value, dict):
            if not self.is_object:
                return value
            props = self.props
            for key in list(value):
                if self.root and key in _ROOT_KEEP:
                    continue
                if key in props:
                    sub = props[key]
                elif self.open:
                    sub = self.additional
                    if sub is None:
                        continue
                else:
                    del value[key]
                    pruned.append(_join((path, key)))
                    continue
                child = value[key]
                if child is None:
                    if key not in self.nullable and key in props:
                        del value[key]
                    continue
                if sub is not None and isinstance(child, dict | list):
                    value[key] = sub.run(child, (path, key), pruned)
            for key, default, sub in self.defaults:
                if key not in value:
                    fresh = copy.deepcopy(default)
                    value[key] = sub.run(fresh, (path, key), pruned) if sub is not None else fresh
            return value
        if isinstance(value, list) and self.items is not None:
            items = self.items
            for i, v in enumerate(value):
                if isinstance(v, dict | list):
                    value[i] = items.run(v, (path, f"[{i}]"), pruned)
        return value


def _compile_node(schema: Any) -> _Normalizer | None:
    """None for schemas with nothing to prune or default below them (scalars): no call at all."""
    if not isinstance(schema, dict):
        return None
    node = _Normalizer(schema)
    if not node.is_object and node.items is None:
        return None
    return node


def _translate(schema: Any) -> Any:
    """OpenAPI v3.0 + Kubernetes extensions -> JSON Schema draft 4."""
    if isinstance(schema, list):
        return [_translate(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, val in schema.items():
        if key in ("properties", "patternProperties", "definitions"):
            out[key] = {k: _translate(v) for k, v in val.items()}
        elif key in ("items", "additionalProperties", "not", "allOf", "anyOf", "oneOf"):
            out[key] = _translate(val)
        elif key.startswith("x-kubernetes-") or key in ("nullable", "default", "example", "format", "description"):
            continue
        else:
            out[key] = val
    if schema.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
    if schema.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    return out


class SchemaChecker:
    """A compiled openAPIV3Schema of one CRD version."""

    def __init__(self, schema: dict[str, Any]) -> None:
        self.schema = schema
        self._normalizer = _Normalizer(schema, root=True)
        translated = _translate(schema)
        # apiVersion/kind/metadata are checked by the server itself.
        props = translated.get("properties")
        if isinstance(props, dict):
            for key in _ROOT_KEEP:
                props.pop(key, None)
        if isinstance(translated.get("required"), list):
            translated["required"] = [r for r in translated["required"] if r not in _ROOT_KEEP]
        self._validator = jsonschema.Draft4Validator(translated)
        self._fast = fastcheck.compile_schema(translated)
        self.rules = celrules.compile_schema(schema)

    def normalize(self, obj: dict[str, Any]) -> list[str]:
        """Prune and default `obj` in place; returns the pruned field paths."""
        pruned: list[str] = []
        self._normalizer.run(obj, None, pruned)
        return pruned

    def validate(self, obj: dict[str, Any]) -> list[Cause]:
        if self._fast is not None and self._fast(obj):
            return []  # the common case, ~10x cheaper than collecting jsonschema errors
        causes: list[Cause] = []
        for err in self._validator.iter_errors(obj):
            causes.extend(_causes(err))
        causes.sort(key=lambda c: c["field"])
        return causes

    def check_rules(self, obj: dict[str, Any], old: dict[str, Any] | None, schema_causes: list[Cause]) -> list[Cause]:
        """The CEL rules' causes; after a blocking schema error, only kube's "not checked" notice."""
        if self.rules.empty:
            return []
        if any(c["reason"] in BLOCKING for c in schema_causes):
            return [RULES_NOT_CHECKED]
        # A rule on the root reports kube's nil field path, which it prints as "<nil>".
        return [{"reason": v.reason, "message": v.message, "field": v.field or "<nil>"}
                for v in self.rules.validate(obj, old)]


def _path(parts: Any) -> str:
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            out += f".{p}" if out else str(p)
    return out


def _short(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _causes(err: jsonschema.ValidationError) -> list[Cause]:
    field = _path(err.absolute_path)
    v = err.validator
    if v == "required":
        inst = err.instance if isinstance(err.instance, dict) else {}
        return [
            {"reason": "FieldValueRequired", "message": "Required value", "field": f"{field}.{r}" if field else r}
            for r in err.validator_value if r not in inst
        ]
    if v == "type":
        want = err.validator_value
        want_s = want if isinstance(want, str) else " or ".join(want)
        return [{
            "reason": "FieldValueTypeInvalid",
            "message": f"Invalid value: {_short(err.instance)}: {field} in body must be of type {want_s}: "
                       f"{_json_type(err.instance)!r}".replace("'", '"'),
            "field": field,
        }]
    if v == "enum":
        allowed = ", ".join(json.dumps(x) for x in err.validator_value)
        return [{
            "reason": "FieldValueNotSupported",
            "message": f"Unsupported value: {_short(err.instance)}: supported values: {allowed}",
            "field": field,
        }]
    if v == "maxLength":
        return [{"reason": "FieldValueTooLong", "message": f"Too long: may not be longer than {err.validator_value}",
                 "field": field}]
    if v in ("maxItems", "maxProperties") and isinstance(err.instance, list | dict):
        return [{"reason": "FieldValueTooMany",
                 "message": f"Too many: {len(err.instance)}: must have at most {err.validator_value} items",
                 "field": field}]
    return [{
        "reason": "FieldValueInvalid",
        "message": f"Invalid value: {_short(err.instance)}: {field} in body {_describe(err)}",
        "field": field,
    }]


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _describe(err: jsonschema.ValidationError) -> str:
    v, want = err.validator, err.validator_value
    texts = {
        "minimum": f"should be greater than or equal to {want}",
        "maximum": f"should be less than or equal to {want}",
        "minLength": f"should be at least {want} chars long",
        "maxLength": f"may not be longer than {want}",
        "minItems": f"should have at least {want} items",
        "maxItems": f"must have at most {want} items",
        "pattern": f"should match '{want}'",
        "uniqueItems": "shouldn't contain duplicates",
        "minProperties": f"should have at least {want} properties",
        "maxProperties": f"should have at most {want} properties",
        "multipleOf": f"should be a multiple of {want}",
    }
    return texts.get(str(v), re.sub(r"\s+", " ", err.message))
