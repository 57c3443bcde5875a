"""The scale subresource: an autoscaling/v1 Scale view of a CRD's spec/status replicas paths."""

from __future__ import annotations

import copy
from typing import Any

from wasmfleet.apiserver import errors, selectors
from wasmfleet.apiserver.engine import Engine, WriteOptions
from wasmfleet.apiserver.resource_types import ResourceType


def get_scale(engine: Engine, rt: ResourceType, ns: str, name: str) -> dict[str, Any]:
    assert rt.scale is not None
    obj = engine.current(rt, ns, name)
    meta = obj["metadata"]
    spec_r = _get_json_path(obj, rt.scale.spec_replicas_path)
    status_r = _get_json_path(obj, rt.scale.status_replicas_path)
    scale: dict[str, Any] = {
        "kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                     if k in meta},
        "spec": {"replicas": spec_r if isinstance(spec_r, int) else 0},
        "status": {"replicas": status_r if isinstance(status_r, int) else 0},
    }
    if rt.scale.label_selector_path:
        sel = _get_json_path(obj, rt.scale.label_selector_path)
        if sel:
            scale["status"]["selector"] = selectors.selector_to_string(sel)
    return scale

def write_scale(engine: Engine, rt: ResourceType, ns: str, name: str, scale: Any, opts: WriteOptions
                ) -> tuple[dict[str, Any], Any]:
    assert rt.scale is not None
    replicas = scale.get("spec", {}).get("replicas") if isinstance(scale, dict) else None
    if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
        raise errors.invalid("Scale", "autoscaling", name, [{
            "reason": "FieldValueInvalid", "field": "spec.replicas",
            "message": f"Invalid value: {replicas!r}: must be greater than or equal to 0"}])
    current = engine.current(rt, ns, name)
    rv = (scale.get("metadata") or {}).get("resourceVersion")
    if rv and rv != current["metadata"]["resourceVersion"]:
        raise errors.conflict(rt.group, rt.plural, name, "the object has been modified; please apply your "
                                                         "changes to the latest version and try again")
    new = copy.deepcopy(current)
    _set_json_path(new, rt.scale.spec_replicas_path, replicas)
    _, fut = engine.write_update(rt, ns, name, current, new, opts, "")
    return get_scale(engine, rt, ns, name), fut

def _get_json_path(obj: Any, path: str) -> Any:
    cur = obj
    for part in path.strip(".").split("."):
        if not isinstance(cur, dict):
            return None
        cur = cur.get(part)
    return cur


def _set_json_path(obj: dict[str, Any], path: str, value: Any) -> None:
    parts = path.strip(".").split(".")
    cur = obj
    for part in parts[:-1]:
        cur = cur.setdefault(part, {})
    cur[parts[-1]] = value
