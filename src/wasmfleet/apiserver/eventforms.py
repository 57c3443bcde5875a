"""Core v1 Events and events.k8s.io/v1 Events are one resource in two shapes (as in kube-apiserver).

They are stored in the core shape; events.k8s.io readers and writers see the renamed fields
(involvedObject <-> regarding, message <-> note, count <-> deprecatedCount, ...).
"""

from __future__ import annotations

from typing import Any

EVENTS_V1 = "events.k8s.io/v1"

# (core field, events.k8s.io/v1 field) pairs that only change name.
_RENAMES = (
    ("involvedObject", "regarding"),
    ("message", "note"),
    ("count", "deprecatedCount"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("source", "deprecatedSource"),
    ("reportingComponent", "reportingController"),
)
_SAME = ("metadata", "reason", "type", "action", "related", "series", "eventTime", "reportingInstance")


def to_events_v1(core: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"apiVersion": EVENTS_V1, "kind": "Event"}
    for key in _SAME:
        if key in core:
            out[key] = core[key]
    for old, new in _RENAMES:
        if old in core:
            out[new] = core[old]
    source = core.get("source") or {}
    if "reportingController" not in out and source.get("component"):
        out["reportingController"] = source["component"]
    if "reportingInstance" not in out and source.get("host"):
        out["reportingInstance"] = source["host"]
    return out


def to_core(ev: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"apiVersion": "v1", "kind": "Event"}
    for key in _SAME:
        if key in ev:
            out[key] = ev[key]
    for old, new in _RENAMES:
        if new in ev:
            out[old] = ev[new]
    if "source" not in out and ev.get("reportingController"):
        out["source"] = {"component": ev["reportingController"]}
        if ev.get("reportingInstance"):
            out["source"]["host"] = ev["reportingInstance"]
    return out


def convert(obj: dict[str, Any], api_version: str) -> dict[str, Any] | None:
    """`obj` in the shape of `api_version`, or None when these two are not the Event pair."""
    have = obj.get("apiVersion")
    if obj.get("kind") != "Event":
        return None
    if have == "v1" and api_version == EVENTS_V1:
        return to_events_v1(obj)
    if have == EVENTS_V1 and api_version == "v1":
        return to_core(obj)
    return None
