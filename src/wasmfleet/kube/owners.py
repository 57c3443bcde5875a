"""Ownership: building ownerReferences and mapping a child's events to its owner's key.

Children carry a controller ownerReference (so the API server garbage-collects them with the
owner); the owner's controller is told about every change to a child through `enqueue_owner`.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
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


def enqueue_owner(
    kind: str, add: Callable[[str], None], relevant: Callable[[client.Obj], Hashable] | None = None
) -> Callable[[str, client.Obj], None]:
    """An informer handler that queues the key of the child's controlling `kind` owner.

    `relevant`, when given, names what the owner reads of a child: a MODIFIED event that leaves it
    unchanged (a child's own bookkeeping, e.g. an annotation only its controller reads) does not
    queue the owner. ADDED and DELETED always do."""
    seen: dict[str, Hashable] = {}

    def handler(event: str, obj: client.Obj) -> None:
        ref = controller_of(obj, kind)
        if relevant is not None:
            key = rest_paths.key_of(obj)
            if event == "DELETED":
                seen.pop(key, None)
            else:
                digest = relevant(obj)
                if event == "MODIFIED" and key in seen and seen[key] == digest:
                    return
                seen[key] = digest
        if ref is not None:
            ns = obj["metadata"].get("namespace")
            add(f"{ns}/{ref['name']}" if ns else str(ref["name"]))

    return handler


def enqueue_self(add: Callable[[str], None]) -> Callable[[str, client.Obj], None]:
    """An informer handler that queues the object's own key."""

    def handler(_event: str, obj: client.Obj) -> None:
        add(rest_paths.key_of(obj))

    return handler
