"""Shared pieces of the contract suite: the test CRD, object builders, polling."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from contract_client import Kube

ROOT = Path(__file__).resolve().parents[2]
GROUP = "contract.wasmfleet.dev"
WIDGETS = f"/apis/{GROUP}/v1"

WIDGET_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": f"widgets.{GROUP}"},
    "spec": {
        "group": GROUP,
        "scope": "Namespaced",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wdg"]},
        "versions": [{
            "name": "v1", "served": True, "storage": True,
            "subresources": {
                "status": {},
                "scale": {"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas",
                          "labelSelectorPath": ".status.selector"},
            },
            "additionalPrinterColumns": [
                {"name": "Size", "type": "integer", "jsonPath": ".spec.size"},
                {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
                {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
            ],
            "schema": {"openAPIV3Schema": {
                "type": "object",
                "properties": {
                    "spec": {
                        "type": "object",
                        "required": ["size"],
                        "properties": {
                            "size": {"type": "integer", "minimum": 1, "maximum": 10},
                            "color": {"type": "string", "enum": ["red", "green", "blue"]},
                            "replicas": {"type": "integer", "default": 1, "minimum": 0},
                            "mode": {"type": "string", "default": "auto"},
                            "tags": {"type": "array", "items": {"type": "string"}},
                            "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                        },
                    },
                    "status": {
                        "type": "object",
                        "properties": {
                            "replicas": {"type": "integer"},
                            "selector": {"type": "string"},
                            "phase": {"type": "string"},
                            "conditions": {"type": "array", "items": {
                                "type": "object",
                                "properties": {"type": {"type": "string"}, "status": {"type": "string"},
                                               "reason": {"type": "string"}, "message": {"type": "string"},
                                               "lastTransitionTime": {"type": "string"}}}},
                        },
                    },
                },
            }},
        }],
    },
}


def wait_until(check: Any, timeout_s: float = 10.0, interval_s: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s}s")
        time.sleep(interval_s)


def _install_crd(kube: Kube, crd: dict[str, Any]) -> None:
    """Install the CRD, or update one already there to this checkout's version (a cluster may hold the
    CRDs of an older wasmfleet; the tests check the current ones)."""
    name = crd["metadata"]["name"]
    path = f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}"
    got = kube.get(path)
    if got.status == 404:
        created = kube.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)
        assert created.status == 201, created.body
    else:
        assert got.status == 200, got.body
        meta = dict(crd["metadata"], resourceVersion=got.body["metadata"]["resourceVersion"])
        updated = kube.put(path, dict(crd, metadata=meta))
        assert updated.status == 200, updated.body

    def established() -> bool:
        got = kube.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")
        conds = (got.body or {}).get("status", {}).get("conditions") or []
        return any(c["type"] == "Established" and c["status"] == "True" for c in conds)

    wait_until(established, 30)
    group, version = crd["spec"]["group"], crd["spec"]["versions"][0]["name"]
    wait_until(lambda: kube.get(f"/apis/{group}/{version}").status == 200, 30)


def widget(name: str, size: int = 3, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/v1", "kind": "Widget", "metadata": {"name": name},
            "spec": {"size": size, **spec}}
