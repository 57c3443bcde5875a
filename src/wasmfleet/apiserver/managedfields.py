"""Field ownership (metadata.managedFields, FieldsV1) and server-side apply.

A simplified structured-merge: maps merge key by key, lists are atomic (owned and replaced whole).
Apply takes ownership of every field in the applied configuration, removes fields the same manager
applied before and no longer sends (unless another manager also owns them), and reports a 409 conflict
when another manager owns a field whose value would change, unless `force=true`.
Updates (PUT/PATCH/POST) give their manager ownership of the fields they changed.
"""

from __future__ import annotations

import copy
from typing import Any

from wasmfleet.apiserver import errors

Path = tuple[str, ...]
_META_OWNED = ("labels", "annotations", "finalizers", "ownerReferences")
_MISSING = object()


def leaf_paths(obj: dict[str, Any], *, include_status: bool = True) -> set[Path]:
    out: set[Path] = set()

    def walk(value: Any, prefix: Path) -> None:
        if isinstance(value, dict) and value:
            for key, sub in value.items():
                walk(sub, (*prefix, key))
        else:
            out.add(prefix)

    for key, val in obj.items():
        if key in ("apiVersion", "kind") or (key == "status" and not include_status):
            continue
        if key == "metadata":
            if isinstance(val, dict):
                for mk in _META_OWNED:
                    if mk in val:
                        walk(val[mk], ("metadata", mk))
            continue
        walk(val, (key,))
    return out


def get_path(obj: Any, path: Path) -> Any:
    cur = obj
    for part in path:
        if not isinstance(cur, dict) or part not in cur:
            return _MISSING
        cur = cur[part]
    return cur


def _delete_path(obj: dict[str, Any], path: Path) -> None:
    cur: Any = obj
    parents: list[tuple[dict[str, Any], str]] = []
    for part in path[:-1]:
        if not isinstance(cur, dict) or part not in cur:
            return
        parents.append((cur, part))
        cur = cur[part]
    if isinstance(cur, dict):
        cur.pop(path[-1], None)
    # Drop maps the removal left empty (except at the top level).
    for parent, key in reversed(parents):
        if parent[key] == {} and len(parents) > 1:
            del parent[key]
        else:
            break


def to_fields_v1(paths: set[Path]) -> dict[str, Any]:
    root: dict[str, Any] = {}
    for path in sorted(paths):
        cur = root
        for part in path:
            cur = cur.setdefault(f"f:{part}", {})
    return root


def from_fields_v1(tree: Any, prefix: Path = ()) -> set[Path]:
    out: set[Path] = set()
    if not isinstance(tree, dict):
        return out
    for key, sub in tree.items():
        if not key.startswith("f:"):
            continue
        path = (*prefix, key[2:])
        if isinstance(sub, dict) and any(k.startswith("f:") for k in sub):
            out |= from_fields_v1(sub, path)
        else:
            out.add(path)
    return out


def _entries(obj: dict[str, Any]) -> list[dict[str, Any]]:
    entries = obj.get("metadata", {}).get("managedFields")
    return [e for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []


def _set_entries(obj: dict[str, Any], entries: list[dict[str, Any]]) -> None:
    kept = [e for e in entries if e.get("fieldsV1")]
    if kept:
        obj["metadata"]["managedFields"] = kept
    else:
        obj["metadata"].pop("managedFields", None)


def record_update(old: dict[str, Any] | None, new: dict[str, Any], manager: str, api_version: str,
                  when: str, subresource: str = "") -> None:
    """Give `manager` the fields that differ between `old` and `new` (in place on `new`)."""
    new_paths = leaf_paths(new)
    changed = new_paths if old is None else {p for p in new_paths if get_path(old, p) != get_path(new, p)}
    entries = _entries(new)
    if not changed:
        _set_entries(new, entries)
        return
    mine: dict[str, Any] | None = None
    for e in entries:
        if e.get("manager") == manager and e.get("operation") == "Update" and e.get("subresource", "") == subresource:
            mine = e
            continue
        owned = from_fields_v1(e.get("fieldsV1"))
        if owned & changed:
            e["fieldsV1"] = to_fields_v1(owned - changed)
    owned_now = (from_fields_v1(mine.get("fieldsV1")) if mine else set()) | changed
    owned_now = {p for p in owned_now if p in new_paths or get_path(new, p) is not _MISSING}
    entry: dict[str, Any] = {
        "manager": manager, "operation": "Update", "apiVersion": api_version, "time": when,
        "fieldsType": "FieldsV1", "fieldsV1": to_fields_v1(owned_now),
    }
    if subresource:
        entry["subresource"] = subresource
    entries = [e for e in entries if e is not mine] + [entry]
    _set_entries(new, entries)


def _deep_merge(base: Any, applied: Any) -> Any:
    if isinstance(base, dict) and isinstance(applied, dict):
        out = dict(base)
        for key, val in applied.items():
            out[key] = _deep_merge(base.get(key), val)
        return out
    return copy.deepcopy(applied)


def apply(current: dict[str, Any] | None, applied: dict[str, Any], manager: str, api_version: str,
          when: str, *, force: bool, include_status: bool) -> dict[str, Any]:
    """The object after `manager` applies `applied` onto `current` (None: create)."""
    applied_paths = leaf_paths(applied, include_status=include_status)
    if current is None:
        result = copy.deepcopy(applied)
        result.setdefault("metadata", {}).pop("managedFields", None)
        entries: list[dict[str, Any]] = []
        previous: set[Path] = set()
    else:
        entries = [copy.deepcopy(e) for e in _entries(current)]
        previous = set()
        conflicts: list[tuple[str, Path]] = []
        for e in entries:
            owned = from_fields_v1(e.get("fieldsV1"))
            if e.get("manager") == manager and e.get("operation") == "Apply":
                previous = owned
                continue
            for p in owned & applied_paths:
                if get_path(current, p) != get_path(applied, p):
                    conflicts.append((str(e.get("manager")), p))
        if conflicts and not force:
            causes = [{"reason": "FieldManagerConflict",
                       "message": f'conflict with "{m}": .{".".join(p)}', "field": "." + ".".join(p)}
                      for m, p in conflicts]
            lines = "\n".join(f'- {c["message"]}' for c in causes)
            raise errors.ApiError(
                409,
                f"Apply failed with {len(conflicts)} conflict{'s' if len(conflicts) > 1 else ''}: {lines}",
                reason="Conflict", details={"causes": causes},
            )
        result = _deep_merge(current, {k: v for k, v in applied.items() if k != "metadata"})
        meta_applied = applied.get("metadata") or {}
        for mk in _META_OWNED:
            if mk in meta_applied:
                result["metadata"][mk] = _deep_merge(result["metadata"].get(mk), meta_applied[mk])
        others: set[Path] = set()
        for e in entries:
            if e.get("manager") == manager and e.get("operation") == "Apply":
                continue
            owned = from_fields_v1(e.get("fieldsV1"))
            if force:
                owned -= applied_paths
                e["fieldsV1"] = to_fields_v1(owned)
            others |= owned
        for p in previous - applied_paths - others:
            _delete_path(result, p)
    entries = [e for e in entries if not (e.get("manager") == manager and e.get("operation") == "Apply")]
    entries.append({
        "manager": manager, "operation": "Apply", "apiVersion": api_version, "time": when,
        "fieldsType": "FieldsV1", "fieldsV1": to_fields_v1(applied_paths),
    })
    result.setdefault("metadata", {})
    _set_entries(result, entries)
    return result
