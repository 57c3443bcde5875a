"""A WorkloadDeployment's top-level spec.kubernetes (upstream's place for it) is carried to its Workloads.

Checks (pure: `operator.deployments.resolved_template`, the template its ReplicaSets and Workloads get):
- spec.kubernetes is copied into the template's spec; the template's own kubernetes, when set, wins;
- without either, the template has no kubernetes key (and its hash is what it was before);
- the template hash changes with the Service name, so renaming the Service rolls out new Workloads.
"""

from __future__ import annotations

from typing import Any

from wasmfleet.api import models
from wasmfleet.operator import deployments


def wd(kubernetes: dict[str, Any] | None = None, template_kubernetes: dict[str, Any] | None = None
       ) -> models.WorkloadDeployment:
    tspec: dict[str, Any] = {"components": [{"name": "c", "image": "file:///x.wasm"}]}
    if template_kubernetes is not None:
        tspec["kubernetes"] = template_kubernetes
    spec: dict[str, Any] = {"replicas": 1, "template": {"spec": tspec}}
    if kubernetes is not None:
        spec["kubernetes"] = kubernetes
    return models.WorkloadDeployment.model_validate({
        "apiVersion": "runtime.wasmcloud.dev/v1alpha1", "kind": "WorkloadDeployment",
        "metadata": {"name": "d", "namespace": "apps"}, "spec": spec,
    })


def test_top_level_kubernetes_reaches_the_template() -> None:
    template = deployments.resolved_template(wd({"service": {"name": "hello"}}), {})
    assert template["spec"]["kubernetes"] == {"service": {"name": "hello"}}


def test_the_templates_own_kubernetes_wins() -> None:
    template = deployments.resolved_template(
        wd({"service": {"name": "outer"}}, template_kubernetes={"service": {"name": "inner"}}), {})
    assert template["spec"]["kubernetes"] == {"service": {"name": "inner"}}


def test_without_kubernetes_nothing_is_added_and_the_name_changes_the_hash() -> None:
    plain = deployments.resolved_template(wd(), {})
    assert "kubernetes" not in plain["spec"]
    a = deployments.template_hash(deployments.resolved_template(wd({"service": {"name": "a"}}), {}))
    b = deployments.template_hash(deployments.resolved_template(wd({"service": {"name": "b"}}), {}))
    assert len({deployments.template_hash(plain), a, b}) == 3
