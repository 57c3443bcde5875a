"""PATCH bodies: JSON merge patch (RFC 7386), JSON patch (RFC 6902), strategic merge for built-ins."""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch

from wasmfleet.apiserver import errors

MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
APPLY_YAML = "application/apply-patch+yaml"
APPLY_CBOR = "application/apply-patch+cbor"
SUPPORTED = (MERGE, JSON_PATCH, STRATEGIC, APPLY_YAML)


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, val in patch.items():
        if val is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), val)
    return out


def _strip_directives(patch: Any) -> Any:
    """Drop strategic-merge directives ($setElementOrder/..., $retainKeys, $patch) we do not honour."""
    if isinstance(patch, dict):
        if patch.get("$patch") == "delete":
            return None
        return {k: _strip_directives(v) for k, v in patch.items() if not k.startswith("$")}
    if isinstance(patch, list):
        return [_strip_directives(v) for v in patch]
    return patch


def strategic_merge(target: dict[str, Any], patch: Any) -> Any:
    """Strategic merge for the built-in kinds we store, treated as merge patch (lists replace).

    The built-ins served here (ConfigMap, Secret, Namespace, Lease, ...) carry maps, not merge-keyed
    lists, in the fields kubectl edits, so this is exact for them; documented as a limitation.
    """
    return merge_patch(target, _strip_directives(patch))


def json_patch(target: dict[str, Any], ops: Any) -> Any:
    if not isinstance(ops, list):
        raise errors.bad_request("json patch must be a JSON array of operations")
    try:
        return jsonpatch.JsonPatch(ops).apply(target, in_place=False)
    except jsonpatch.JsonPatchTestFailed as exc:
        raise errors.ApiError(422, f"the server rejected our request due to an error in our request: {exc}") from exc
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException, KeyError, IndexError, TypeError) as exc:
        raise errors.ApiError(422, f"the server rejected our request due to an error in our request: {exc}",
                              ) from exc
