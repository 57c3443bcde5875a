"""The scale subresource: an autoscaling/v1 Scale view of a CRD's spec/status replicas paths.

The answer is shaped as kube-apiserver serialises autoscaling/v1 Scale: `spec.replicas` is omitempty
(so `"spec": {}` at 0), `status.replicas` is always present, `status.selector` is omitempty and is the
string found at labelSelectorPath, and metadata carries only name, namespace, uid, resourceVersion and
creationTimestamp. A written Scale whose `spec` has no `replicas` therefore means 0, which is what a
client sends back after reading a Scale at 0.
"""

from __future__ import annotations

import copy
from typing import Any

from wasmfleet.apiserver import errors
from wasmfleet.apiserver.engine import Engine, WriteOptions
from wasmfleet.apiserver.resource_types import ResourceType

_SCALE_META = ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
_INT32_MAX = 2**31 - 1


def get_scale(engine: Engine, rt: ResourceType, ns: str, name: str) -> dict[str, Any]:
    return _scale_of(rt, engine.current(rt, ns, name))


def _scale_of(rt: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
    assert rt.scale is not None
    meta = obj["metadata"]
    spec: dict[str, Any] = {}
    spec_r = _int_at(obj, rt.scale.spec_replicas_path)
    if spec_r:
        spec["replicas"] = spec_r
    status: dict[str, Any] = {"replicas": _int_at(obj, rt.scale.status_replicas_path)}
    if rt.scale.label_selector_path:
        selector = _get_json_path(obj, rt.scale.label_selector_path)
        if isinstance(selector, str) and selector:
            status["selector"] = selector
    return {
        "kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {k: meta[k] for k in _SCALE_META if k in meta},
        "spec": spec,
        "status": status,
    }


def write_scale(engine: Engine, rt: ResourceType, ns: str, name: str, scale: Any, opts: WriteOptions
                ) -> tuple[dict[str, Any], Any]:
    assert rt.scale is not None
    replicas = _replicas_of(scale)
    if replicas < 0:
        # kube-apiserver checks the custom resource after setting the path, so the error names the
        # resource's kind and the CRD's specReplicasPath as written (leading dot included).
        raise errors.invalid(rt.kind, rt.group, name, [{
            "reason": "FieldValueInvalid", "field": rt.scale.spec_replicas_path,
            "message": f"Invalid value: {replicas}: should be a non-negative integer"}])
    current = engine.current(rt, ns, name)
    rv = (scale.get("metadata") or {}).get("resourceVersion")
    if rv and rv != current["metadata"]["resourceVersion"]:
        raise errors.conflict(rt.group, rt.plural, name, "the object has been modified; please apply your "
                                                         "changes to the latest version and try again")
    new = copy.deepcopy(current)
    _set_json_path(new, rt.scale.spec_replicas_path, replicas)
    result, fut = engine.write_update(rt, ns, name, current, new, opts, "scale")
    return _scale_of(rt, result.obj), fut


def _replicas_of(scale: Any) -> int:
    """spec.replicas of a written Scale: absent means 0 (omitempty); not an int32 is a 400 as in kube."""
    if not isinstance(scale, dict):
        raise errors.bad_request("the body of a scale write must be an autoscaling/v1 Scale object")
    spec = scale.get("spec")
    if spec is None:
        return 0
    if not isinstance(spec, dict):
        raise errors.bad_request(f"Scale.spec must be an object, got {type(spec).__name__}")
    replicas = spec.get("replicas")
    if replicas is None:
        return 0
    if not isinstance(replicas, int) or isinstance(replicas, bool) or not -_INT32_MAX - 1 <= replicas <= _INT32_MAX:
        raise errors.bad_request(f"Scale.spec.replicas must be a 32-bit integer, got {replicas!r}")
    return replicas


def _int_at(obj: Any, path: str) -> int:
    value = _get_json_path(obj, path)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


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
