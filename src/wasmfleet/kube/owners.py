"""Ownership: building ownerReferences and mapping a child's events to its owner's key.

Children carry a controller ownerReference (so the API server garbage-collects them with the
owner); the owner's controller is told about every change to a child through `enqueue_owner`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from wasmfleet.kube import client, rest_paths


def owner_reference(owner: client.Obj, *, controller: bool = True) -> dict[str, Any]:
    meta = owner["metadata"]
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": controller,
        "blockOwnerDeletion": True,
    }


def controller_of(obj: client.Obj, kind: str) -> dict[str, Any] | None:
    """The controlling ownerReference of `obj` when its owner has `kind`."""
    for ref in obj.get("metadata", {}).get("ownerReferences") or []:
        if ref.get("controller") and ref.get("kind") == kind:
            return dict(ref)
    return None


def is_owned_by(obj: client.Obj, owner: client.Obj) -> bool:
    uid = owner["metadata"].get("uid")
    return any(
        ref.get("uid") == uid for ref in obj.get("metadata", {}).get("ownerReferences") or []
    )


def owner_uids(obj: client.Obj) -> list[str]:
    """Index function: the uids of every owner of `obj`."""
    return [str(ref["uid"]) for ref in obj.get("metadata", {}).get("ownerReferences") or [] if "uid" in ref]


def enqueue_owner(kind: str, add: Callable[[str], None]) -> Callable[[str, client.Obj], None]:
    """An informer handler that queues the key of the child's controlling `kind` owner."""

    def handler(_event: str, obj: client.Obj) -> None:
        ref = controller_of(obj, kind)
        if ref is not None:
            ns = obj["metadata"].get("namespace")
            add(f"{ns}/{ref['name']}" if ns else str(ref["name"]))

    return handler


def enqueue_self(add: Callable[[str], None]) -> Callable[[str, client.Obj], None]:
    """An informer handler that queues the object's own key."""

    def handler(_event: str, obj: client.Obj) -> None:
        add(rest_paths.key_of(obj))

    return handler
