"""A compiled yes/no validator for the structural schemas CRDs use (the hot path of every write).

`compile_schema` turns a Draft 4 schema (already translated from OpenAPI) into nested closures that only
answer "valid?". It is conservative: any keyword it does not implement makes it return None, and the
caller then always uses `jsonschema`. When it answers "invalid", the caller asks `jsonschema` for the
detailed field errors, so messages come from one place.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

Check = Callable[[Any], bool]

_IGNORED = {"title", "description", "$schema", "id", "format", "example", "default", "definitions"}
_PY_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,), "integer": (int,), "number": (int, float), "boolean": (bool,), "object": (dict,),
    "array": (list,), "null": (type(None),),
}


def _type_check(names: Any) -> Check:
    try:
        pytypes = tuple(t for n in names for t in _PY_TYPES[n])
    except (KeyError, TypeError) as exc:
        raise Unsupported(f"type {names}") from exc
    if ("integer" in names or "number" in names) and "boolean" not in names:
        # bool is an int subclass in Python but not a JSON number.
        return lambda v: isinstance(v, pytypes) and v.__class__ is not bool
    return lambda v: isinstance(v, pytypes)


class Unsupported(Exception):
    pass


def _num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    return bool(a == b)


def _unique(values: list[Any]) -> bool:
    seen = set()
    for v in values:
        key = json.dumps(v, sort_keys=True)
        if key in seen:
            return False
        seen.add(key)
    return True


def _compile(schema: Any) -> Check:
    if not isinstance(schema, dict):
        raise Unsupported(repr(schema))
    checks: list[Check] = []
    for key in schema:
        if key not in _IGNORED and key not in _HANDLED:
            raise Unsupported(key)
    if "type" in schema:
        names = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        checks.append(_type_check(names))
    if "enum" in schema:
        allowed = list(schema["enum"])
        checks.append(lambda v: any(_same(v, a) for a in allowed))
    if "minimum" in schema:
        lo, excl = schema["minimum"], bool(schema.get("exclusiveMinimum"))
        checks.append(lambda v: not _num(v) or (v > lo if excl else v >= lo))
    if "maximum" in schema:
        hi, excl_hi = schema["maximum"], bool(schema.get("exclusiveMaximum"))
        checks.append(lambda v: not _num(v) or (v < hi if excl_hi else v <= hi))
    if "multipleOf" in schema:
        raise Unsupported("multipleOf")  # float subtleties: leave to jsonschema
    if "minLength" in schema:
        n_min = schema["minLength"]
        checks.append(lambda v: not isinstance(v, str) or len(v) >= n_min)
    if "maxLength" in schema:
        n_max = schema["maxLength"]
        checks.append(lambda v: not isinstance(v, str) or len(v) <= n_max)
    if "pattern" in schema:
        rx = re.compile(schema["pattern"])
        checks.append(lambda v: not isinstance(v, str) or rx.search(v) is not None)
    if "minItems" in schema:
        i_min = schema["minItems"]
        checks.append(lambda v: not isinstance(v, list) or len(v) >= i_min)
    if "maxItems" in schema:
        i_max = schema["maxItems"]
        checks.append(lambda v: not isinstance(v, list) or len(v) <= i_max)
    if schema.get("uniqueItems"):
        checks.append(lambda v: not isinstance(v, list) or _unique(v))
    if "minProperties" in schema:
        p_min = schema["minProperties"]
        checks.append(lambda v: not isinstance(v, dict) or len(v) >= p_min)
    if "maxProperties" in schema:
        p_max = schema["maxProperties"]
        checks.append(lambda v: not isinstance(v, dict) or len(v) <= p_max)
    if "required" in schema:
        req = list(schema["required"])
        checks.append(lambda v: not isinstance(v, dict) or all(r in v for r in req))
    props: dict[str, Check] = {k: _compile(s) for k, s in (schema.get("properties") or {}).items()}
    additional = schema.get("additionalProperties", True)
    add_check: Check | None = None
    if isinstance(additional, dict):
        add_check = _compile(additional)
    elif additional is not True:
        raise Unsupported("additionalProperties: false")
    if props or add_check is not None:
        get_prop = props.get

        def check_props(v: Any) -> bool:
            if v.__class__ is not dict:
                return not isinstance(v, dict) or check_props(dict(v))
            for key, val in v.items():
                sub = get_prop(key)
                if sub is not None:
                    if not sub(val):
                        return False
                elif add_check is not None and not add_check(val):
                    return False
            return True
        checks.append(check_props)
    if "items" in schema:
        if not isinstance(schema["items"], dict):
            raise Unsupported("tuple items")
        item = _compile(schema["items"])

        def check_items(v: Any) -> bool:
            if isinstance(v, list):
                for x in v:  # a plain loop: all(<genexpr>) costs a generator per list
                    if not item(x):
                        return False
            return True
        checks.append(check_items)
    for key, combine in (("allOf", all), ("anyOf", any)):
        if key in schema:
            subs = [_compile(s) for s in schema[key]]
            checks.append(lambda v, subs=subs, combine=combine: combine(s(v) for s in subs))  # type: ignore[misc]
    if "oneOf" in schema:
        one = [_compile(s) for s in schema["oneOf"]]
        checks.append(lambda v: sum(1 for s in one if s(v)) == 1)
    if "not" in schema:
        neg = _compile(schema["not"])
        checks.append(lambda v: not neg(v))
    if not checks:
        return lambda v: True
    if len(checks) == 1:
        return checks[0]
    chain = tuple(checks)

    def check_all(v: Any) -> bool:
        for c in chain:  # noqa: SIM110 - a plain loop is measurably cheaper than all(<genexpr>) here
            if not c(v):
                return False
        return True

    return check_all


_HANDLED = {
    "type", "enum", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "minLength", "maxLength",
    "pattern", "minItems", "maxItems", "uniqueItems", "minProperties", "maxProperties", "required",
    "properties", "additionalProperties", "items", "allOf", "anyOf", "oneOf", "not",
}


def compile_schema(schema: dict[str, Any]) -> Check | None:
    try:
        return _compile(schema)
    except (Unsupported, re.error):
        return None
