"""Writing status only when it changed, as one merge patch on the /status subresource."""

from __future__ import annotations

from typing import Any

from wasmfleet.api import conditions
from wasmfleet.kube import client, rest_paths


def merge_patch(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """The top-level merge patch turning `old` into `new` (removed keys become null)."""
    patch: dict[str, Any] = {k: v for k, v in new.items() if old.get(k) != v}
    patch.update({k: None for k in old if k not in new})
    return patch


async def write(
    kube: client.KubeClient, res: rest_paths.Resource, obj: client.Obj, status: dict[str, Any]
) -> client.Obj | None:
    """Patch obj's status to `status` when different; the updated object, or None when unchanged."""
    old = obj.get("status") or {}
    patch = merge_patch(old, status)
    if not patch:
        return None
    meta = obj["metadata"]
    return await kube.patch(res, meta.get("namespace"), meta["name"], {"status": patch}, subresource="status")


def ensure_order(conds: list[conditions.Condition], types: tuple[str, ...], generation: int | None) -> None:
    """Give every condition type a slot (Unknown) in the kind's fixed order, so they read in order."""
    for type_ in types:
        if conditions.get_condition(conds, type_) is None:
            conditions.set_condition(conds, type_, "Unknown", reason="Pending", observed_generation=generation)
    conds.sort(key=lambda c: types.index(c.type) if c.type in types else len(types))
