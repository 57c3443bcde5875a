"""The checks kube-apiserver makes on an EndpointSlice's addresses, beyond its schema.

The rules themselves are `wasmfleet.api.endpoint_addresses` (the gateway asks the same module before
writing a slice); this turns them into 422 causes with Kubernetes' field paths and wording, e.g.
``endpoints[0].addresses[0]: Invalid value: "127.0.0.1": may not be in the loopback range ...``.
"""

from __future__ import annotations

from typing import Any

from wasmfleet.api import endpoint_addresses

STORE_KEY = ("discovery.k8s.io", "endpointslices")


def check(obj: dict[str, Any]) -> list[dict[str, str]]:
    """422 causes for every refused address of every endpoint (empty when the slice is fine)."""
    address_type = obj.get("addressType")
    endpoints = obj.get("endpoints")
    if not isinstance(address_type, str) or not isinstance(endpoints, list):
        return []  # the schema check reports those
    causes: list[dict[str, str]] = []
    for i, endpoint in enumerate(endpoints):
        path = f"endpoints[{i}].addresses"
        addresses = endpoint.get("addresses") if isinstance(endpoint, dict) else None
        if not isinstance(addresses, list) or not addresses:
            causes.append({"reason": "FieldValueRequired", "field": path,
                           "message": "Required value: must contain at least 1 address"})
            continue
        if len(addresses) > endpoint_addresses.MAX_ADDRESSES:
            causes.append({"reason": "FieldValueTooMany", "field": path,
                           "message": f"Too many: {len(addresses)}: must have at most "
                                      f"{endpoint_addresses.MAX_ADDRESSES} items"})
        for j, address in enumerate(addresses):
            if not isinstance(address, str):
                causes.append({"reason": "FieldValueInvalid", "field": f"{path}[{j}]",
                               "message": f"Invalid value: {address!r}: must be a string"})
                continue
            causes.extend(
                {"reason": "FieldValueInvalid", "field": f"{path}[{j}]",
                 "message": f'Invalid value: "{address}": {problem}'}
                for problem in endpoint_addresses.problems(address, address_type)
            )
    return causes
