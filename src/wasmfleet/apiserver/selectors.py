"""Label and field selectors in the query-string syntax kubectl and client libraries send."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from wasmfleet.apiserver import errors

_REQ = re.compile(
    r"""^\s*(?:
        (?P<not>!)\s*(?P<nkey>[^\s!=,()]+)                                   # !key
      | (?P<skey>[^\s!=,()]+)\s*(?P<setop>in|notin)\s*\((?P<values>[^)]*)\)  # key in (a,b)
      | (?P<key>[^\s!=,()]+)\s*(?P<op>==|=|!=)\s*(?P<value>[^\s,()]*)        # key=value
      | (?P<ekey>[^\s!=,()]+)                                                # key (exists)
    )\s*$""",
    re.VERBOSE,
)


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # = != in notin exists !
    values: tuple[str, ...] = ()

    def matches(self, labels: dict[str, str]) -> bool:
        has = self.key in labels
        if self.op == "exists":
            return has
        if self.op == "!":
            return not has
        value = labels.get(self.key)
        if self.op == "=":
            return has and value == self.values[0]
        if self.op == "!=":
            return not has or value != self.values[0]
        if self.op == "in":
            return has and value in self.values
        return not has or value not in self.values  # notin


def _split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside parentheses."""
    parts: list[str] = []
    depth = 0
    cur = ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return [p for p in parts if p.strip()]


def parse_label_selector(text: str | None) -> list[Requirement]:
    if not text:
        return []
    reqs: list[Requirement] = []
    for part in _split_top_level(text):
        m = _REQ.match(part)
        if m is None:
            raise errors.bad_request(f"unable to parse requirement: invalid label selector {text!r}")
        if m["nkey"]:
            reqs.append(Requirement(m["nkey"], "!"))
        elif m["skey"]:
            values = tuple(v.strip() for v in m["values"].split(",") if v.strip())
            reqs.append(Requirement(m["skey"], m["setop"], values))
        elif m["key"]:
            reqs.append(Requirement(m["key"], "!=" if m["op"] == "!=" else "=", (m["value"],)))
        else:
            reqs.append(Requirement(m["ekey"], "exists"))
    return reqs


def field_value(obj: dict[str, Any], path: str) -> str | None:
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    if cur is None:
        return None
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return str(cur)


def parse_field_selector(text: str | None) -> list[tuple[str, str, str]]:
    if not text:
        return []
    out: list[tuple[str, str, str]] = []
    for part in text.split(","):
        m = re.match(r"^\s*([A-Za-z0-9_.\-/]+)\s*(==|=|!=)\s*(.*?)\s*$", part)
        if m is None:
            raise errors.bad_request(f"invalid field selector: {text!r}")
        out.append((m[1], "!=" if m[2] == "!=" else "=", m[3]))
    return out


Matcher = Callable[[dict[str, Any]], bool]


def matcher(label_selector: str | None, field_selector: str | None) -> Matcher | None:
    """A predicate over objects, or None when both selectors are empty (match everything)."""
    labels = parse_label_selector(label_selector)
    fields = parse_field_selector(field_selector)
    if not labels and not fields:
        return None

    def match(obj: dict[str, Any]) -> bool:
        obj_labels = obj.get("metadata", {}).get("labels") or {}
        if not all(r.matches(obj_labels) for r in labels):
            return False
        for path, op, value in fields:
            got = field_value(obj, path)
            # A missing field compares as "" (kube-apiserver's field sets default to empty strings).
            got = "" if got is None else got
            if (got == value) != (op == "="):
                return False
        return True

    return match


def selector_to_string(sel: Any) -> str:
    """A metav1.LabelSelector object as the string form (for Scale status.selector)."""
    if isinstance(sel, str):
        return sel
    if not isinstance(sel, dict):
        return ""
    parts = [f"{k}={v}" for k, v in sorted((sel.get("matchLabels") or {}).items())]
    for expr in sel.get("matchExpressions") or []:
        op = str(expr.get("operator", "")).lower()
        key = expr.get("key", "")
        if op in ("in", "notin"):
            parts.append(f"{key} {op} ({','.join(expr.get('values') or [])})")
        elif op == "exists":
            parts.append(key)
        elif op == "doesnotexist":
            parts.append(f"!{key}")
    return ",".join(parts)
