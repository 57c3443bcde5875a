"""The Helm chart (deploy/chart), rendered and linted offline with the Helm v4 SDK; every rendered
object validated (built-in kinds: kubernetes-validate, strict; runtime.wasmcloud.dev kinds: the CRDs'
schemas). Checks:

- `helm lint` finds no warning or error;
- default values: NATS StatefulSet with JetStream and TLS, the three host groups as Deployments and
  Services hostgroup-<name>, the operator with probes, /metrics, resources and a PDB;
- least privilege: gateway RBAC read-only, hosts bound to nothing but system:auth-delegator (for
  metricsAuth; without it no token and no binding at all), operator's Lease
  rights limited to the release namespace; NetworkPolicies keep NATS to the operator and hosts;
- the generated certificates chain to the generated CA (openssl verify), the server's names cover the
  URL clients use, and the client certificates are valid for client authentication;
- the ci/ values files (external NATS with TLS off; a three-server JetStream cluster) render valid
  objects, including a WorkloadDeployment through extraObjects validated against its CRD;
- inconsistent values fail to render with a message naming the value;
- the validator is not vacuous: a misspelled field is rejected;
- deploy/chart/crds is an exact copy of deploy/crds.
"""

from __future__ import annotations

import base64
import filecmp
import subprocess
from pathlib import Path
from typing import Any

import helm_python as helm
import jsonschema
import kubernetes_validate
import pytest
import yaml
from chart_rendering import CHART, NAMESPACE, REPO, by_kind, env_of, render, validate

HOST_GROUPS = ("default", "private-ingress", "public-ingress")


def ci_values(name: str) -> dict[str, Any]:
    return dict(yaml.safe_load((CHART / "ci" / name).read_text()))


def test_lint_is_clean() -> None:
    report = helm.lint(str(CHART))
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert report["total_charts_linted"] == 1
    assert problems == [] and report["errors"] == [], report


@pytest.mark.parametrize("values_file", [None, "external-nats-values.yaml", "clustered-nats-values.yaml",
                                         "dashboard-values.yaml"])
def test_every_rendered_object_is_valid(values_file: str | None) -> None:
    objects = render(ci_values(values_file) if values_file else None)
    assert len(objects) > 20
    for obj in objects:
        validate(obj)


def test_defaults_run_nats_three_host_groups_and_an_operator_with_probes() -> None:
    objects = render()
    (nats,) = by_kind(objects, "StatefulSet").values()
    assert nats["spec"]["replicas"] == 1
    conf = by_kind(objects, "ConfigMap")["wf-wasmfleet-nats"]["data"]["nats.conf"]
    assert "jetstream {" in conf and "verify_and_map: true" in conf and "cluster {" not in conf

    deployments = by_kind(objects, "Deployment")
    services = by_kind(objects, "Service")
    for group in HOST_GROUPS:
        env = env_of(deployments[f"hostgroup-{group}"])
        assert env["WASMFLEET_HOST_GROUP"] == group
        assert env["WASMFLEET_HOSTNAME"] == env["WASMFLEET_HOST_HOSTNAME"] == "$(POD_IP)"
        assert env["WASMFLEET_HOST_NATS"] == f"tls://wf-wasmfleet-nats.{NAMESPACE}.svc:4222"
        assert env["WASMFLEET_HOST_NATS_TLS_CERT"] == "/etc/wasmfleet/nats-tls/tls.crt"
        assert f"hostgroup-{group}" in services
    assert services["hostgroup-public-ingress"]["spec"]["type"] == "LoadBalancer"
    assert services["hostgroup-private-ingress"]["spec"]["type"] == "ClusterIP"
    assert [p["name"] for p in services["hostgroup-default"]["spec"]["ports"]] == ["metrics"]
    assert services["wf-wasmfleet-gateway"]["spec"]["type"] == "ClusterIP"

    operator = deployments["wf-wasmfleet-operator"]
    (container,) = operator["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["operator"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["resources"]["requests"]["cpu"]
    env = env_of(operator)
    assert env["WASMFLEET_OPERATOR_LEASE_NAME"] == "wf-wasmfleet-operator"
    # hosts beat every 5 s; the operator waits three beats
    assert env["WASMFLEET_OPERATOR_HOST_EXPIRY"] == "15"
    assert "wf-wasmfleet-operator" in by_kind(objects, "PodDisruptionBudget")


def test_scaling_a_host_group_and_its_workers_are_values() -> None:
    objects = render({"hostGroups": {"public-ingress": {"replicas": 5, "workers": 3,
                                                        "extraArgs": ["--label", "zone=a"]}}})
    deployment = by_kind(objects, "Deployment")["hostgroup-public-ingress"]
    assert deployment["spec"]["replicas"] == 5
    assert env_of(deployment)["WASMFLEET_HOST_WORKERS"] == "3"
    assert deployment["spec"]["template"]["spec"]["containers"][0]["args"] == ["host", "--label", "zone=a"]
    assert by_kind(objects, "Deployment")["hostgroup-default"]["spec"]["replicas"] == 1


def test_rbac_is_least_privilege() -> None:
    objects = render()
    roles = by_kind(objects, "ClusterRole")
    gateway_verbs = {verb for rule in roles["wf-wasmfleet-gateway"]["rules"] for verb in rule["verbs"]}
    assert gateway_verbs == {"get", "list", "watch"}
    host_sa = by_kind(objects, "ServiceAccount")["wf-wasmfleet-host"]
    assert host_sa["automountServiceAccountToken"] is False
    # By default (metricsAuth) a host's token serves only to review scrapers' tokens.
    host_roles = {b["roleRef"]["name"] for kind in ("ClusterRoleBinding", "RoleBinding")
                  for b in by_kind(objects, kind).values() for s in b["subjects"] if s["name"] == "wf-wasmfleet-host"}
    assert host_roles == {"system:auth-delegator"}
    # Without metricsAuth, hosts have no token and no binding at all.
    no_metrics_auth = render({"metricsAuth": {"enabled": False}})
    for group in HOST_GROUPS:
        spec = by_kind(no_metrics_auth, "Deployment")[f"hostgroup-{group}"]["spec"]["template"]["spec"]
        assert spec["automountServiceAccountToken"] is False
    bound = {s["name"] for kind in ("ClusterRoleBinding", "RoleBinding")
             for b in by_kind(no_metrics_auth, kind).values() for s in b["subjects"]}
    assert bound == {"wf-wasmfleet-operator", "wf-wasmfleet-gateway"}
    lease_rules = [r for r in roles["wf-wasmfleet-operator"]["rules"] if "leases" in r["resources"]]
    assert lease_rules == []  # Leases only through the namespaced Role
    (lease_role,) = by_kind(objects, "Role").values()
    assert lease_role["metadata"]["namespace"] == NAMESPACE and lease_role["rules"][0]["resources"] == ["leases"]
    with_slices = render({"gateway": {"endpointSlices": True}})
    rules = by_kind(with_slices, "ClusterRole")["wf-wasmfleet-gateway"]["rules"]
    assert any("endpointslices" in r["resources"] and "create" in r["verbs"] for r in rules)


def test_network_policies_keep_nats_to_the_operator_and_hosts() -> None:
    policies = by_kind(render(), "NetworkPolicy")
    client_rule = next(r for r in policies["wf-wasmfleet-nats"]["spec"]["ingress"] if r["ports"][0]["port"] == 4222)
    (peer,) = client_rule["from"]
    components = next(e for e in peer["podSelector"]["matchExpressions"] if e["key"] == "app.kubernetes.io/component")
    assert sorted(components["values"]) == ["host", "operator"]
    default_http = policies["wf-wasmfleet-hostgroup-default"]["spec"]["ingress"][0]
    assert default_http["from"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "gateway"
    assert "from" not in policies["wf-wasmfleet-hostgroup-public-ingress"]["spec"]["ingress"][0]
    assert by_kind(render({"networkPolicy": {"enabled": False}}), "NetworkPolicy") == {}


def _write_secret(secret: dict[str, Any], directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for key, value in secret["data"].items():
        (directory / key).write_bytes(base64.b64decode(value))
    return directory


def test_generated_certificates_chain_to_the_ca_and_name_the_service(tmp_path: Path) -> None:
    secrets = by_kind(render(), "Secret")
    dirs = {role: _write_secret(secrets[f"wf-wasmfleet-{role}-tls"], tmp_path / role)
            for role in ("nats", "operator", "host")}
    ca = (dirs["nats"] / "ca.crt").read_bytes()
    assert all((d / "ca.crt").read_bytes() == ca for d in dirs.values())
    server = dirs["nats"]
    for purpose, d in (("sslserver", server), ("sslclient", dirs["operator"]), ("sslclient", dirs["host"])):
        out = subprocess.run(["openssl", "verify", "-purpose", purpose, "-CAfile", str(d / "ca.crt"),
                              str(d / "tls.crt")], capture_output=True, text=True)
        assert out.returncode == 0 and ": OK" in out.stdout, out.stdout + out.stderr
    text = subprocess.run(["openssl", "x509", "-noout", "-ext", "subjectAltName", "-in", str(server / "tls.crt")],
                          capture_output=True, text=True, check=True).stdout
    assert f"DNS:wf-wasmfleet-nats.{NAMESPACE}.svc" in text
    assert f"DNS:*.wf-wasmfleet-nats-headless.{NAMESPACE}.svc" in text  # routes between servers


def test_external_nats_without_tls() -> None:
    objects = render(ci_values("external-nats-values.yaml"))
    assert by_kind(objects, "StatefulSet") == {} and by_kind(objects, "Secret") == {}
    deployments = by_kind(objects, "Deployment")
    assert "hostgroup-private-ingress" not in deployments
    for name, role in (("wf-wasmfleet-operator", "OPERATOR"), ("hostgroup-public-ingress", "HOST")):
        env = env_of(deployments[name])
        assert env[f"WASMFLEET_{role}_NATS"] == "nats://nats.messaging.svc:4222"
        assert not any("TLS" in key for key in env)
        volumes = deployments[name]["spec"]["template"]["spec"]["volumes"]
        assert "nats-tls" not in {v["name"] for v in volumes}
    gateway = by_kind(objects, "Service")["wf-wasmfleet-gateway"]
    assert gateway["spec"]["type"] == "NodePort" and gateway["spec"]["ports"][0]["nodePort"] == 30080
    (workload,) = by_kind(objects, "WorkloadDeployment").values()
    assert workload["metadata"]["namespace"] == NAMESPACE


def test_clustered_nats_has_a_route_to_every_server() -> None:
    objects = render(ci_values("clustered-nats-values.yaml"))
    (nats,) = by_kind(objects, "StatefulSet").values()
    assert nats["spec"]["replicas"] == 3 and nats["spec"]["podManagementPolicy"] == "Parallel"
    conf = by_kind(objects, "ConfigMap")["wf-wasmfleet-nats"]["data"]["nats.conf"]
    for i in range(3):
        assert f"nats://wf-wasmfleet-nats-{i}.wf-wasmfleet-nats-headless.{NAMESPACE}.svc:6222" in conf
    assert "wf-wasmfleet-nats" in by_kind(objects, "PodDisruptionBudget")


@pytest.mark.parametrize(("values", "named"), [
    ({"nats": {"enabled": False}}, "nats.url"),
    ({"tls": {"generate": False}}, "tls.existingSecrets.nats"),
    ({"tls": {"generate": False, "existingSecrets": {"nats": "n", "operator": "o"}}}, "tls.existingSecrets.host"),
    ({"nats": {"replicas": 2}}, "nats.replicas"),
    ({"tls": {"ca": {"cert": "x"}}}, "tls.ca.key"),
    ({"hostGroups": {"Bad_Name": {"enabled": True, "workers": 1}}}, "hostGroups.Bad_Name"),
    ({"gateway": {"service": {"type": "Ingress"}}}, "gateway.service.type"),
])
def test_inconsistent_values_fail_naming_the_value(values: dict[str, Any], named: str) -> None:
    with pytest.raises(helm.HelmError) as caught:
        render(values)
    assert named in str(caught.value), str(caught.value)


def test_given_secrets_replace_generation() -> None:
    objects = render({"tls": {"generate": False, "existingSecrets": {"nats": "n", "operator": "o", "host": "h"}}})
    assert by_kind(objects, "Secret") == {}
    volumes = by_kind(objects, "Deployment")["hostgroup-default"]["spec"]["template"]["spec"]["volumes"]
    assert {"name": "nats-tls", "secret": {"secretName": "h", "defaultMode": 0o440}} in volumes


def test_validation_rejects_a_misspelled_field() -> None:
    objects = render(ci_values("external-nats-values.yaml"))
    deployment = dict(by_kind(objects, "Deployment")["wf-wasmfleet-gateway"])
    deployment["spec"] = {**deployment["spec"], "replica": 2}
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(deployment)
    (workload,) = by_kind(objects, "WorkloadDeployment").values()
    workload["spec"]["replicas"] = "two"
    with pytest.raises(jsonschema.ValidationError):
        validate(workload)


def test_chart_crds_are_a_copy_of_deploy_crds() -> None:
    ours = sorted(p.name for p in (REPO / "deploy" / "crds").glob("*.yaml"))
    chart = sorted(p.name for p in (CHART / "crds").glob("*.yaml"))
    assert ours == chart and ours
    same, mismatch, errors = filecmp.cmpfiles(REPO / "deploy" / "crds", CHART / "crds", ours, shallow=False)
    assert sorted(same) == ours and mismatch == [] and errors == [], (
        f"{mismatch + errors} differ: cp deploy/crds/*.yaml deploy/chart/crds/")
