"""CRD validation rules (`x-kubernetes-validations`) compiled and evaluated as kube-apiserver does.

The rules are CEL, so they run on Google's CEL implementation (`cel-expr-python`, the C++ runtime), with
real type checking: each rule is checked against the type Kubernetes derives from the structural schema
at the node that carries it (`celtypes`: object nodes become protobuf message types built on the fly,
one field per property, names escaped as Kubernetes escapes them), so `self.namespace` on a schema with a `namespace`
property fails to compile with "undefined field 'namespace'" exactly where a real API server refuses it;
the property is reachable as `self.__namespace__`.

Checking needs those message types, evaluation does not: a checked rule is serialized and loaded into an
environment where `self` and `oldSelf` are `dyn`, then evaluated on the JSON values themselves (maps and
lists), so `has(self.x)` is key presence as in Kubernetes and nothing is copied into protobuf messages.
Values are only rewritten where the CEL view differs from the JSON: escaped property names and
`number` fields that arrived as JSON integers (Kubernetes sees doubles there).

Kubernetes semantics kept: `self`/`oldSelf`; transition rules (those that reference `oldSelf`) run only on
update and only where an old value correlates (same property, same map key, same list-map key; items of
atomic lists and sets have no old value); `message`, `messageExpression`, `reason`, `fieldPath`; rules on
any node (root, objects, list items, map values, scalars); the root sees only `metadata.name` and
`metadata.generateName`. Functions: CEL's standard library, the strings extension, `cel.bind` and
Kubernetes' list and regex functions (`celfunctions`). Not kept: the cost budget (estimated and runtime
cost limits), string formats as CEL timestamps/durations/bytes, and the other Kubernetes libraries
(`url()`, `quantity()` ...): a rule that uses one fails to compile, so it is refused, never skipped.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field
from typing import Any

from cel_expr_python import cel  # type: ignore[import-untyped]
from cel_expr_python.ext import ext_bindings, ext_strings  # type: ignore[import-untyped]

from wasmfleet.api import celfunctions, celtypes

JSON = dict[str, Any]
_T = cel.Type

# Cause types of the Kubernetes field errors a rule may ask for (`reason`).
REASONS = ("FieldValueInvalid", "FieldValueForbidden", "FieldValueRequired", "FieldValueDuplicate")


@dataclass(frozen=True)
class Violation:
    """One field error, in kube-apiserver's terms (`reason` is the StatusCause type)."""

    field: str
    reason: str
    message: str


@dataclass(frozen=True)
class CompileProblem:
    """A rule that does not compile: `field` is its place in the schema (`...x-kubernetes-validations[0].rule`)."""

    field: str
    rule: str
    error: str

    @property
    def message(self) -> str:
        return f"Invalid value: {json.dumps(self.rule)}: {self.error}"


# --------------------------------------------------------------------------- compiled rules


_EXTENSIONS = (ext_strings.ExtStrings, ext_bindings.ExtBindings)


@functools.cache
def _eval_env() -> Any:
    """Where checked rules run: `self`/`oldSelf` are dyn, values are plain maps and lists."""
    return cel.NewEnv(variables={"self": _T.DYN, "oldSelf": _T.DYN}, extensions=[e() for e in _EXTENSIONS],
                      functions=celfunctions.declarations())


@dataclass
class _Rule:
    rule: str
    message: str
    program: Any
    message_program: Any
    reason: str
    field_path: tuple[str, ...]
    transition: bool


@dataclass
class _Node:
    type_name: str
    convert: celtypes.Convert | None
    rules: list[_Rule] = field(default_factory=list)
    broken: list[CompileProblem] = field(default_factory=list)
    props: dict[str, _Node] = field(default_factory=dict)
    items: _Node | None = None
    values: _Node | None = None
    list_keys: tuple[str, ...] = ()  # x-kubernetes-list-map-keys of a list-type=map array
    has_rules: bool = False  # rules here (compiled after the walk, once every type is known)
    # All rules of the node as one program returning a list of bools (one C++ call instead of one per
    # rule): `batch_create` without the transition rules, `batch_update` with them; None: per rule.
    batch_create: Any = None
    batch_update: Any = None
    create_rules: list[_Rule] = field(default_factory=list)  # the rules that run without an old value

    @property
    def active(self) -> bool:
        return bool(self.has_rules or self.props or self.items or self.values)


class CompiledRules:
    """Every rule of one openAPIV3Schema, compiled; `problems` lists those that did not compile."""

    def __init__(self, schema: JSON, where: str) -> None:
        self._types = celtypes.Types()
        self.problems: list[CompileProblem] = []
        self._pending: list[tuple[_Node, celtypes.Shape, JSON, str]] = []
        self._root = self._node(schema, where, root=True)
        self.count = 0
        if self._pending:
            try:
                pool = self._types.pool()
            except (TypeError, ValueError) as exc:  # protobuf refused the declared types: name clashes
                for node, _, node_schema, at in self._pending:
                    for i, spec in enumerate(node_schema.get("x-kubernetes-validations") or []):
                        rule = spec.get("rule", "") if isinstance(spec, dict) else ""
                        self._fail(node, CompileProblem(f"{at}.x-kubernetes-validations[{i}].rule", str(rule),
                                                        f"compilation failed: the schema's types: {exc}"))
                pool = None
            for node, shape, node_schema, at in self._pending if pool is not None else ():
                self._compile_node(pool, node, shape, node_schema, at)
        self._pending = []

    @property
    def empty(self) -> bool:
        return not self._root.active

    # --- compile -------------------------------------------------------------------------------
    def _node(self, schema: JSON, at: str, root: bool = False) -> _Node:
        node = _Node(type_name=str(schema.get("type", "")), convert=celtypes.converter(schema, root))
        props = schema.get("properties")
        if isinstance(props, dict):
            for name, sub in props.items():
                if isinstance(sub, dict) and not (root and name == "metadata"):
                    child = self._node(sub, f"{at}.properties[{name}]")
                    if child.active:
                        node.props[name] = child
        items = schema.get("items")
        if isinstance(items, dict):
            child = self._node(items, f"{at}.items")
            node.items = child if child.active else None
            if schema.get("x-kubernetes-list-type") == "map":
                node.list_keys = tuple(schema.get("x-kubernetes-list-map-keys") or ())
        additional = schema.get("additionalProperties")
        if isinstance(additional, dict):
            child = self._node(additional, f"{at}.additionalProperties")
            node.values = child if child.active else None
        if schema.get("x-kubernetes-validations"):
            node.has_rules = True
            # Compiled once the whole schema's types exist (a rule sees the types below its node).
            self._pending.append((node, self._types.shape(schema, root), schema, at))
        return node

    def _compile_node(self, pool: Any, node: _Node, shape: celtypes.Shape, schema: JSON, at: str) -> None:
        rules = schema.get("x-kubernetes-validations")
        if not isinstance(rules, list):
            return
        self_type = shape.cel_type()
        env = cel.NewEnv(pool, variables={"self": self_type, "oldSelf": self_type},
                         extensions=[e() for e in _EXTENSIONS], functions=celfunctions.declarations())
        env_new_only = cel.NewEnv(pool, variables={"self": self_type}, extensions=[e() for e in _EXTENSIONS],
                                  functions=celfunctions.declarations())
        for i, spec in enumerate(rules):
            place = f"{at}.x-kubernetes-validations[{i}]"
            rule = spec.get("rule") if isinstance(spec, dict) else None
            if not isinstance(rule, str) or not rule.strip():
                self._fail(node, CompileProblem(f"{place}.rule", str(rule or ""), "rule is not specified"))
                continue
            compiled = _check(env, rule, "bool")
            if isinstance(compiled, str):
                self._fail(node, CompileProblem(f"{place}.rule", rule, compiled))
                continue
            message_program = None
            message_expression = spec.get("messageExpression")
            if isinstance(message_expression, str) and message_expression.strip():
                checked = _check(env, message_expression, "string")
                if isinstance(checked, str):
                    self._fail(node, CompileProblem(f"{place}.messageExpression", message_expression, checked))
                    continue
                message_program = _eval_env().deserialize(checked.serialize())
            reason = spec.get("reason") or "FieldValueInvalid"
            if reason not in REASONS:
                self._fail(node, CompileProblem(f"{place}.reason", rule,
                                                f"unsupported reason {reason!r}: use one of {', '.join(REASONS)}"))
                continue
            field_path = _parse_field_path(spec.get("fieldPath") or "", schema)
            if field_path is None:
                self._fail(node, CompileProblem(f"{place}.fieldPath", rule,
                                                f"fieldPath {spec.get('fieldPath')!r} is not a valid path to a "
                                                "property of this schema node"))
                continue
            node.rules.append(_Rule(
                rule=rule, message=str(spec.get("message") or "").strip(),
                program=_eval_env().deserialize(compiled.serialize()), message_program=message_program,
                reason=reason, field_path=field_path, transition=isinstance(_check(env_new_only, rule, ""), str),
            ))
            self.count += 1
        node.create_rules = [r for r in node.rules if not r.transition]
        node.batch_create = _batch(env, node.create_rules)
        node.batch_update = _batch(env, node.rules)

    def _fail(self, node: _Node, problem: CompileProblem) -> None:
        self.problems.append(problem)
        node.broken.append(problem)

    # --- evaluate ------------------------------------------------------------------------------
    def validate(self, obj: Any, old: Any = None) -> list[Violation]:
        """Every rule's verdict on `obj` (and `old`, the stored object, on update)."""
        out: list[Violation] = []
        _walk(self._root, obj, old, None, out)
        return out


def _batch(env: Any, rules: list[_Rule]) -> Any:
    """One program evaluating every rule of `rules` into a list (an error in one fails the list, and the
    caller then evaluates rule by rule to say which)."""
    if not rules:
        return None
    checked = _check(env, "[" + ", ".join(f"({r.rule})" for r in rules) + "]", "")
    return None if isinstance(checked, str) else _eval_env().deserialize(checked.serialize())


def _check(env: Any, source: str, want: str) -> Any:
    """The checked expression, or the compile error as kube-apiserver words it."""
    try:
        expr = env.compile(source)
    except RuntimeError as exc:  # cel-expr-python reports parse and check errors as RuntimeError
        lines = [ln.strip() for ln in str(exc).splitlines() if "ERROR:" in ln]
        text = "; ".join(ln[ln.index("ERROR:"):].removesuffix("[INVALID_ARGUMENT]").strip() for ln in lines)
        return f"compilation failed: {text or str(exc)}"
    got = expr.return_type()
    if want == "bool" and not (got == _T.BOOL or got == _T.DYN):
        return f"compilation failed: cel expression must evaluate to a bool, not {got.name().lower()}"
    if want == "string" and not (got == _T.STRING or got == _T.DYN):
        return f"compilation failed: messageExpression must evaluate to a string, not {got.name().lower()}"
    return expr


_FIELD_PATH = re.compile(r"\.([A-Za-z_][A-Za-z0-9_-]*)|\['([^']+)'\]")


def _parse_field_path(text: str, schema: JSON) -> tuple[str, ...] | None:
    """`.a.b['c.d']` -> ("a", "b", "c.d"), each step a property of the schema below; None if not so."""
    steps: list[str] = []
    pos = 0
    node: Any = schema
    while pos < len(text):
        match = _FIELD_PATH.match(text, pos)
        if match is None:
            return None
        name = match.group(1) or match.group(2)
        props = node.get("properties") if isinstance(node, dict) else None
        if isinstance(props, dict) and name in props:
            node = props[name]
        elif isinstance(node, dict) and isinstance(node.get("additionalProperties"), dict):
            node = node["additionalProperties"]
        else:
            return None
        steps.append(name)
        pos = match.end()
    return tuple(steps)


# A field path as a chain of (parent, segment) links, joined into text only for a violation: most writes
# are valid, and building every list item's path string would cost more than evaluating its rules.
PathLink = tuple[Any, str] | None


def _text(link: PathLink, extra: tuple[str, ...] = ()) -> str:
    parts: list[str] = []
    while link is not None:
        link, seg = link
        parts.append(seg)
    parts.reverse()
    parts.extend(extra)
    out = ""
    for seg in parts:
        out += seg if seg.startswith("[") or not out else "." + seg
    return out


def _walk(node: _Node, value: Any, old: Any, path: PathLink, out: list[Violation]) -> None:
    if value is None:
        return
    if node.has_rules:
        _evaluate(node, value, old, path, out)
    if node.props and value.__class__ is dict:
        old_map = old if old.__class__ is dict else None
        for name, child in node.props.items():
            sub = value.get(name)
            if sub is not None:
                _walk(child, sub, old_map.get(name) if old_map is not None else None, (path, name), out)
    if node.items is not None and value.__class__ is list:
        olds = _correlate_items(node.list_keys, old) if node.list_keys else None
        for i, item in enumerate(value):
            old_item = olds.get(_item_key(node.list_keys, item)) if olds else None
            _walk(node.items, item, old_item, (path, f"[{i}]"), out)
    if node.values is not None and value.__class__ is dict:
        old_map = old if old.__class__ is dict else None
        for key, item in value.items():
            _walk(node.values, item, old_map.get(key) if old_map is not None else None, (path, f"[{key}]"), out)


def _item_key(keys: tuple[str, ...], item: Any) -> Any:
    return tuple(json.dumps(item.get(k), sort_keys=True) for k in keys) if isinstance(item, dict) else None


def _correlate_items(keys: tuple[str, ...], old: Any) -> dict[Any, Any]:
    if not isinstance(old, list):
        return {}
    return {_item_key(keys, item): item for item in old}


def _evaluate(node: _Node, value: Any, old: Any, path: PathLink, out: list[Violation]) -> None:
    for problem in node.broken:  # a stored CRD from before its rule stopped compiling: fail closed
        out.append(Violation(_text(path), "FieldValueInvalid",
                             f"Invalid value: {json.dumps(node.type_name)}: rule compile error: {problem.error}"))
    rules = node.create_rules if old is None else node.rules
    if not rules:
        return  # only transition rules here, and no old value: not on create, not for new items
    convert = node.convert
    data: dict[str, Any] = {"self": convert(value) if convert is not None else value}
    if old is not None:
        data["oldSelf"] = convert(old) if convert is not None else old
    try:
        activation = _eval_env().Activation(data)
    except (RuntimeError, ValueError, TypeError, OverflowError) as exc:  # a value CEL cannot hold
        out.append(Violation(_text(path), "FieldValueInvalid", f"Invalid value: {json.dumps(node.type_name)}: {exc}"))
        return
    batch = node.batch_create if old is None else node.batch_update
    if batch is not None:
        verdicts = batch.eval(activation).plain_value()
        if verdicts.__class__ is list and all(v is True for v in verdicts):
            return  # the common case: every rule holds
        if verdicts.__class__ is list and all(v is True or v is False for v in verdicts):
            for rule, verdict in zip(rules, verdicts, strict=True):
                if verdict is False:
                    out.append(_violation(node, rule, _text(path, rule.field_path),
                                          _failure_message(rule, activation)))
            return
    for rule in rules:  # an error (or a non-bool) somewhere: rule by rule, to say which
        result = rule.program.eval(activation)
        where = _text(path, rule.field_path)
        if result.type() == _T.BOOL:
            if result.value() is True:
                continue
            out.append(_violation(node, rule, where, _failure_message(rule, activation)))
        else:
            detail = str(result.value()) if result.type() == _T.ERROR else f"no boolean result ({result.value()!r})"
            out.append(Violation(where, "FieldValueInvalid", f"Invalid value: {json.dumps(node.type_name)}: "
                                                             f"{detail} evaluating rule: {_rule_text(rule)}"))


def _rule_text(rule: _Rule) -> str:
    return rule.message or rule.rule.strip()


def _failure_message(rule: _Rule, activation: Any) -> str:
    if rule.message_program is not None:
        got = rule.message_program.eval(activation)
        text = got.value() if got.type() == _T.STRING else None
        if isinstance(text, str) and text.strip() and "\n" not in text:
            return text.strip()
    return rule.message or f"failed rule: {rule.rule.strip()}"


def _violation(node: _Node, rule: _Rule, where: str, message: str) -> Violation:
    if rule.reason == "FieldValueForbidden":
        return Violation(where, rule.reason, f"Forbidden: {message}")
    if rule.reason == "FieldValueRequired":
        return Violation(where, rule.reason, f"Required value: {message}")
    if rule.reason == "FieldValueDuplicate":
        return Violation(where, rule.reason, f"Duplicate value: {json.dumps(node.type_name)}")
    return Violation(where, "FieldValueInvalid", f"Invalid value: {json.dumps(node.type_name)}: {message}")


_CACHE: dict[str, CompiledRules] = {}
_CACHE_LIMIT = 256


def compile_schema(schema: JSON) -> CompiledRules:
    """The rules of `schema`, compiled once per distinct schema (a CRD write validates and then serves
    the same schema; object writes only evaluate). Problem paths start at `openAPIV3Schema`."""
    key = json.dumps(schema, sort_keys=True)
    got = _CACHE.get(key)
    if got is None:
        if len(_CACHE) >= _CACHE_LIMIT:
            _CACHE.pop(next(iter(_CACHE)))
        got = _CACHE[key] = CompiledRules(schema, "openAPIV3Schema")
    return got
