"""Resource models: upstream manifests parse; the hostInterfaces, volume and naming rules hold (the
rules spanning fields are the CRDs' CEL, evaluated offline by `validate_object`); CEL is skipped with
kube's notice after a blocking schema error; conditions move lastTransitionTime only on a status change."""

from __future__ import annotations

from typing import Any

import pytest

from wasmfleet.api import conditions, validation
from wasmfleet.api.models import Host, Workload, WorkloadDeployment


def workload(**spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"components": [{"name": "app", "image": "file:///app.wasm"}]}
    base.update(spec)
    return {
        "apiVersion": "runtime.wasmcloud.dev/v1alpha1",
        "kind": "Workload",
        "metadata": {"name": "w", "namespace": "default"},
        "spec": base,
    }


def kv(name: str | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"namespace": "wasi", "package": "keyvalue", "interfaces": ["store"]}
    if name:
        entry["name"] = name
    return entry


def paths(body: dict[str, Any]) -> list[str]:
    return [e.path for e in validation.validate_object(body)]


def test_defaults_are_applied_and_json_names_round_trip() -> None:
    w = Workload.model_validate(workload())
    assert w.spec.components[0].image_pull_policy == "IfNotPresent"
    assert w.spec.components[0].pool_size == 0
    dumped = w.to_json()
    assert dumped["spec"]["components"][0]["imagePullPolicy"] == "IfNotPresent"
    assert "image_pull_policy" not in str(dumped)


def test_two_unnamed_entries_of_one_package_fail_naming_spec_host_interfaces() -> None:
    errors = validation.validate_object(workload(hostInterfaces=[kv(), kv()]))
    assert [e.path for e in errors] == ["spec.hostInterfaces", "spec.hostInterfaces"]
    assert "must be unique" in errors[0].message and "must have a name" in errors[1].message


def test_named_entries_of_one_package_are_accepted() -> None:
    assert paths(workload(hostInterfaces=[kv("cache"), kv("sessions")])) == []


def test_duplicate_named_entries_are_rejected() -> None:
    errors = validation.validate_object(workload(hostInterfaces=[kv("cache"), kv("cache")]))
    assert [(e.path, e.message) for e in errors] == [("spec.hostInterfaces", 'Invalid value: "array": '
                                                      "hostInterfaces entries must be unique by namespace, package, "
                                                      "name and version")]


@pytest.mark.parametrize("bad", ["Cache", "-x", "a_b"])
def test_interface_names_follow_the_dns_label_pattern(bad: str) -> None:
    assert paths(workload(hostInterfaces=[kv(bad)])) == ["spec.hostInterfaces[0].name"]


def test_a_blocking_schema_error_skips_the_rules_with_kubes_notice() -> None:
    """Too long is blocking in kube-apiserver: the CEL rules (here: no component) are not evaluated."""
    errors = validation.validate_object(workload(components=[], hostInterfaces=[kv("x" * 65)]))
    assert [e.path for e in errors] == ["spec.hostInterfaces[0].name", ""]
    assert errors[1].message == validation.RULES_NOT_CHECKED


def test_interfaces_list_needs_at_least_one_entry() -> None:
    entry = {"namespace": "wasi", "package": "http", "interfaces": []}
    assert paths(workload(hostInterfaces=[entry])) == ["spec.hostInterfaces[0].interfaces"]


def test_volume_mount_must_name_an_existing_volume() -> None:
    comp = {"name": "app", "image": "x", "localResources": {"volumeMounts": [{"name": "data", "mountPath": "/d"}]}}
    errors = validation.validate_object(workload(components=[comp]))
    assert [(e.path, e.message) for e in errors] == [
        ("spec", 'Invalid value: "object": every volumeMounts entry must name a volume in spec.volumes')]
    ok = workload(components=[comp], volumes=[{"name": "data", "ephemeral": {}}])
    assert paths(ok) == []


def test_volume_needs_exactly_one_source() -> None:
    both = {"name": "v", "ephemeral": {}, "hostPath": {"path": "/tmp"}}
    assert paths(workload(volumes=[both])) == ["spec.volumes[0]"]


def test_negative_pool_size_and_unknown_fields_are_reported_with_paths() -> None:
    body = workload(components=[{"name": "a", "image": "b", "poolSize": -1, "colour": "red"}])
    assert sorted(paths(body)) == ["spec.components[0].colour", "spec.components[0].poolSize"]


def test_object_names_must_be_dns_subdomains() -> None:
    body = workload()
    body["metadata"]["name"] = "Not_Valid"
    assert paths(body) == ["metadata"]


def test_host_accepts_top_level_and_seed_spec_forms() -> None:
    top = {"apiVersion": "runtime.wasmcloud.dev/v1alpha1", "kind": "Host", "metadata": {"name": "h"}, "hostId": "N1"}
    assert Host.model_validate(top).effective_host_id == "N1"
    nested = {**top, "spec": {"hostId": "N2"}}
    del nested["hostId"]
    assert Host.model_validate(nested).effective_host_id == "N2"
    del nested["spec"]
    assert paths(nested) == [""]


def test_deployment_defaults_replicas_and_policy() -> None:
    body = {
        "apiVersion": "runtime.wasmcloud.dev/v1alpha1",
        "kind": "WorkloadDeployment",
        "metadata": {"name": "d"},
        "spec": {"template": {"spec": workload()["spec"]}},
    }
    wd = WorkloadDeployment.model_validate(body)
    assert (wd.spec.replicas, wd.spec.deploy_policy) == (1, "RollingUpdate")


def test_condition_transition_time_moves_only_on_status_change() -> None:
    conds: list[conditions.Condition] = []
    assert conditions.set_condition(conds, "Ready", "False", reason="Starting", now="t1")
    assert not conditions.set_condition(conds, "Ready", "False", reason="Starting", now="t2")
    assert conditions.set_condition(conds, "Ready", "False", reason="Pulling", now="t3")
    assert conds[0].last_transition_time == "t1"
    assert conditions.set_condition(conds, "Ready", "True", reason="Running", observed_generation=2, now="t4")
    ready = conditions.get_condition(conds, "Ready")
    assert ready is not None and ready.last_transition_time == "t4" and ready.observed_generation == 2
    assert conditions.is_true(conds, "Ready")


def deployment(spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "runtime.wasmcloud.dev/v1alpha1",
        "kind": "WorkloadDeployment",
        "metadata": {"name": "d"},
        "spec": {"template": {"spec": spec}},
    }


_MOUNTING = {"name": "app", "image": "x", "localResources": {"volumeMounts": [{"name": "data", "mountPath": "/d"}]}}
_SERVICE_MOUNTING = {"image": "x", "localResources": {"volumeMounts": [{"name": "data", "mountPath": "/d"}]}}
RULE_CASES: dict[str, tuple[dict[str, Any], list[tuple[str, str]]]] = {
    "valid": (workload(), []),
    "unnamed-shared": (workload(hostInterfaces=[kv(), kv("b")]),
                       [("spec.hostInterfaces", "every one must have a name")]),
    "duplicate-named": (workload(hostInterfaces=[kv("a"), kv("a")]), [("spec.hostInterfaces", "must be unique")]),
    "volume-two-sources": (workload(volumes=[{"name": "v", "ephemeral": {}, "hostPath": {"path": "/t"}}]),
                           [("spec.volumes[0]", "exactly one of ephemeral or hostPath")]),
    "volume-no-source": (workload(volumes=[{"name": "v"}]), [("spec.volumes[0]", "exactly one of")]),
    "mount-without-volume": (workload(components=[_MOUNTING]), [("spec", "must name a volume")]),
    "mount-with-volume": (workload(components=[_MOUNTING], volumes=[{"name": "data", "ephemeral": {}}]), []),
    "service-mount-without-volume": (workload(components=[], service=_SERVICE_MOUNTING),
                                     [("spec", "must name a volume")]),
    "nothing-to-run": (workload(components=[]), [("spec", "at least one component or a service")]),
    "service-only": (workload(components=[], service={"image": "x"}), []),
    "duplicate-components": (workload(components=[{"name": "a", "image": "x"}, {"name": "a", "image": "y"}]),
                             [("spec.components", "component names must be unique")]),
    "deployment-template": (deployment(workload(hostInterfaces=[kv("a"), kv("a")])["spec"]),
                            [("spec.template.spec.hostInterfaces", "must be unique")]),
    "whitespace-in-allowed-hosts": (workload(components=[{"name": "a", "image": "x", "localResources": {
        "allowedHosts": ["ok.example.com", "bad host"]}}]),
        [("spec.components[0].localResources.allowedHosts[1]", "must not contain whitespace")]),
    "host-without-id": ({"apiVersion": "runtime.wasmcloud.dev/v1alpha1", "kind": "Host", "metadata": {"name": "h"}},
                        [("", "hostId is required")]),
}


@pytest.mark.parametrize("case", RULE_CASES.values(), ids=RULE_CASES.keys())
def test_cross_field_rules_are_the_crds_cel(case: tuple[dict[str, Any], list[tuple[str, str]]]) -> None:
    body, expected = case
    errors = validation.validate_object(body)
    assert [e.path for e in errors] == [path for path, _ in expected]
    for error, (_, fragment) in zip(errors, expected, strict=True):
        assert fragment in error.message
