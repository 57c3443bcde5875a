"""`as=Table` responses: server-side printing with a CRD's additionalPrinterColumns, as kubectl asks."""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

from wasmfleet.apiserver.resource_types import PrinterColumn, ResourceType

_TOKEN = re.compile(r"""\.([A-Za-z0-9_\-/]+)|\[(\d+|\*)\]|\[\?\(@\.([A-Za-z0-9_.\-]+)\s*==\s*["']([^"']*)["']\)\]""")


def jsonpath(obj: Any, expr: str) -> list[Any]:
    """A subset of kubectl JSONPath: .a.b, [n], [*], [?(@.field=="value")] (enough for printer columns)."""
    expr = expr.strip()
    if expr.startswith("{") and expr.endswith("}"):
        expr = expr[1:-1]
    if expr.startswith("$"):
        expr = expr[1:]
    current = [obj]
    pos = 0
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        if m is None:
            return []
        pos = m.end()
        nxt: list[Any] = []
        for value in current:
            if m[1] is not None:
                if isinstance(value, dict) and m[1] in value:
                    nxt.append(value[m[1]])
            elif m[2] is not None:
                if isinstance(value, list):
                    if m[2] == "*":
                        nxt.extend(value)
                    elif int(m[2]) < len(value):
                        nxt.append(value[int(m[2])])
            else:
                if isinstance(value, list):
                    for item in value:
                        got = item
                        for part in m[3].split("."):
                            got = got.get(part) if isinstance(got, dict) else None
                        if got is not None and str(got) == m[4]:
                            nxt.append(item)
        current = nxt
    return current


def human_age(stamp: str, now: dt.datetime | None = None) -> str:
    try:
        then = dt.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    except (TypeError, ValueError):
        return "<unknown>"
    secs = int(((now or dt.datetime.now(dt.UTC)) - then).total_seconds())
    if secs < 0:
        return "<invalid>"
    if secs < 120:
        return f"{secs}s"
    mins = secs // 60
    if mins < 10:
        return f"{mins}m{secs % 60}s" if secs % 60 else f"{mins}m"
    if mins < 180:
        return f"{mins}m"
    hours = mins // 60
    if hours < 8:
        return f"{hours}h{mins % 60}m" if mins % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    days = hours // 24
    if days < 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    if days < 365 * 2:
        return f"{days}d"
    return f"{days // 365}y{days % 365}d" if days % 365 else f"{days // 365}y"


def _computed(path: str, obj: dict[str, Any]) -> list[Any]:
    """Built-in columns that are not a single field (kube-apiserver computes them in Go)."""
    if path == "@event-object":
        ref = obj.get("involvedObject") or obj.get("regarding") or {}
        return [f"{str(ref.get('kind', '')).lower()}/{ref.get('name', '')}"]
    if path == "@event-last-seen":
        for candidate in (obj.get("series") or {}).get("lastObservedTime"), obj.get("lastTimestamp"), \
                obj.get("eventTime"), obj.get("metadata", {}).get("creationTimestamp"):
            if isinstance(candidate, str) and candidate:
                return [candidate[:19] + "Z"]
    return []


def _crd_cell(col: PrinterColumn, obj: dict[str, Any]) -> Any:
    """A custom resource's column as kube-apiserver fills it: the first match only, typed by the column's
    type (a value of another JSON type gives an empty cell), dates as ages, strings as JSONPath prints."""
    values = jsonpath(obj, col.json_path)
    if not values or values[0] is None:
        return None
    value = values[0]
    if col.type == "string":
        return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    if col.type == "integer":
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        return int(value)
    if col.type == "number":
        return value if isinstance(value, int | float) and not isinstance(value, bool) else None
    if col.type == "boolean":
        return value if isinstance(value, bool) else None
    if col.type == "date":
        return human_age(value) if isinstance(value, str) else None
    return None


def _cell(col: PrinterColumn, obj: dict[str, Any]) -> Any:
    values = _computed(col.json_path, obj) if col.json_path.startswith("@") else jsonpath(obj, col.json_path)
    if not values:
        return None
    value = values[0]
    if col.type == "date":
        return human_age(value) if isinstance(value, str) else None
    if col.type == "integer" and isinstance(value, dict | list):
        return len(value)  # e.g. the DATA column of ConfigMaps counts keys
    if col.type in ("integer", "number", "boolean"):
        return value
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    if len(values) > 1:
        return ",".join(str(v) for v in values)
    return str(value) if not isinstance(value, str) else value


def columns_of(rt: ResourceType) -> list[PrinterColumn]:
    cols = list(rt.columns)
    if not rt.builtin and not cols:
        cols = [PrinterColumn("Age", "date", ".metadata.creationTimestamp")]
    return cols


_NAME_DESCRIPTION = (
    "Name must be unique within a namespace. Is required when creating resources, although some resources "
    "may allow a client to request the generation of a name automatically. Name is primarily intended for "
    "creation idempotence and configuration definition. Cannot be updated. More info: "
    "https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names"
)


def column_definitions(rt: ResourceType) -> list[dict[str, Any]]:
    # Events hide their (generated) names unless -o wide, as kubectl shows them from a real cluster.
    defs = [{"name": "Name", "type": "string", "format": "name", "description": _NAME_DESCRIPTION,
             "priority": 1 if rt.kind == "Event" else 0}]
    for col in columns_of(rt):
        if rt.builtin:  # kube's built-in printers declare their age columns as strings
            defs.append({"name": col.name, "type": "string" if col.type == "date" else col.type,
                         "format": col.format, "description": col.description, "priority": col.priority})
        else:  # a CRD's columns keep their declared type; the description defaults to the JSONPath
            defs.append({"name": col.name, "type": col.type, "format": col.format,
                         "description": col.description or "Custom resource definition column (in JSONPath "
                         f"format): {col.json_path}", "priority": col.priority})
    return defs


def row(rt: ResourceType, obj: dict[str, Any], include: str) -> dict[str, Any]:
    meta = obj.get("metadata", {})
    cell = _cell if rt.builtin else _crd_cell
    cells = [meta.get("name")] + [cell(c, obj) for c in columns_of(rt)]
    out: dict[str, Any] = {"cells": cells}
    if include == "Object":
        out["object"] = obj
    elif include != "None":
        out["object"] = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": meta}
    return out


def table(rt: ResourceType, objs: list[dict[str, Any]], include: str, list_meta: dict[str, Any],
          with_columns: bool = True) -> dict[str, Any]:
    body: dict[str, Any] = {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": list_meta}
    if with_columns:
        body["columnDefinitions"] = column_definitions(rt)
    body["rows"] = [row(rt, o, include) for o in objs]
    return body
