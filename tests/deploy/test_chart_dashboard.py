"""The chart's read-only dashboard (deploy/chart/templates/dashboard.yaml), rendered offline with the
Helm v4 SDK and run for real. Checks:

- off by default: no dashboard object, NetworkPolicy or Secret is rendered; `helm lint` with it on
  finds no warning or error;
- on: ServiceAccount, ClusterRole and binding, Deployment (non-root, read-only root fs, no capabilities,
  resources, /healthz readiness), ClusterIP Service on 8088, a NetworkPolicy for its port, every
  object valid (kubernetes-validate, strict), the ci/dashboard-values.yaml variant too;
- RBAC is read-only: get/list/watch on exactly the kinds the dashboard watches (watching.KINDS), never
  Secrets or ConfigMaps; dashboard.namespace turns it into a Role and RoleBinding in that namespace;
  with metricsAuth the ServiceAccount is bound to the metrics-reader ClusterRole (and not without);
- auth: neither token nor authHeader -> a generated token Secret reaches the pod through secretKeyRef;
  dashboard.token -> that value in the Secret; existingSecret -> that Secret and key, nothing
  generated; authHeader alone -> the header passed, no token; values that cannot work fail to render
  naming the value;
- the rendered configuration runs: `wasmfleet dashboard` started with exactly the container's args and
  environment (the token from the rendered Secret, the rendered in-cluster kubeconfig with its
  tokenFile and CA moved to files of this machine, pointed at the real embedded API server), with a
  real gateway started from its rendered container: /healthz answers 200 once synced, a page needs the
  token (401 without, 200 with), the per-workload page's stream carries the scrape targets of both
  rendered metrics URLs, and the gateway's /metrics (metricsAuth on) accepts the dashboard's token.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml
from chart_rendering import CHART, NAMESPACE, by_kind, env_of, process, render, validate

from wasmfleet.dashboard import watching
from wasmfleet.testing.apiserver import running_apiserver
from wasmfleet.testing.nats import free_port

DASHBOARD = "wf-wasmfleet-dashboard"
ON = {"dashboard": {"enabled": True}}
WF = [sys.executable, "-m", "wasmfleet"]


def dashboard_values(**settings: Any) -> dict[str, Any]:
    return {"dashboard": {"enabled": True, **settings}}


def container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (only,) = by_kind(objects, "Deployment")[DASHBOARD]["spec"]["template"]["spec"]["containers"]
    return dict(only)


def token_ref(objects: list[dict[str, Any]]) -> dict[str, str] | None:
    for entry in container(objects)["env"]:
        if entry["name"] == "WASMFLEET_DASHBOARD_TOKEN":
            return dict(entry["valueFrom"]["secretKeyRef"])
    return None


def test_disabled_by_default() -> None:
    objects = render()
    assert [o["metadata"]["name"] for o in objects if "dashboard" in o["metadata"]["name"]] == []


def test_lint_with_the_dashboard_on_is_clean() -> None:
    report = helm.lint(str(CHART), values=ON)
    assert [m for m in report["messages"] if m["severity"] >= 2] == [] and report["errors"] == [], report


@pytest.mark.parametrize("values", [ON, yaml.safe_load((CHART / "ci" / "dashboard-values.yaml").read_text())])
def test_enabled_renders_valid_objects(values: dict[str, Any]) -> None:
    objects = render(values)
    for obj in objects:
        validate(obj)
    names = {(o["kind"], o["metadata"]["name"]) for o in objects if o["metadata"]["name"].startswith(DASHBOARD)}
    assert {("ServiceAccount", DASHBOARD), ("Deployment", DASHBOARD), ("Service", DASHBOARD),
            ("NetworkPolicy", DASHBOARD)} <= names
    assert {k for k, _ in names} & {"ClusterRole", "Role"} and {k for k, _ in names} & {"ClusterRoleBinding",
                                                                                        "RoleBinding"}


def test_pod_follows_the_chart_security_conventions() -> None:
    objects = render(ON)
    pod = by_kind(objects, "Deployment")[DASHBOARD]["spec"]["template"]["spec"]
    deployment = by_kind(objects, "Deployment")[DASHBOARD]
    assert deployment["spec"]["replicas"] == 1
    assert pod["serviceAccountName"] == DASHBOARD
    assert pod["securityContext"]["runAsNonRoot"] is True
    dash = container(objects)
    assert dash["args"] == ["dashboard"]
    assert dash["securityContext"]["readOnlyRootFilesystem"] is True
    assert dash["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert dash["securityContext"]["allowPrivilegeEscalation"] is False
    assert dash["resources"]["requests"]["cpu"] and dash["resources"]["limits"]["memory"]
    assert dash["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert dash["livenessProbe"]["tcpSocket"] == {"port": "http"}
    env = env_of(by_kind(objects, "Deployment")[DASHBOARD])
    assert env["WASMFLEET_DASHBOARD_ADDR"] == "0.0.0.0:8088"
    assert env["WASMFLEET_DASHBOARD_KUBECONFIG"] == "/etc/wasmfleet/kubeconfig/kubeconfig"
    assert env["WASMFLEET_DASHBOARD_METRICS_URL"] == f"http://wf-wasmfleet-gateway.{NAMESPACE}.svc:80/metrics"
    service = by_kind(objects, "Service")[DASHBOARD]
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["ports"] == [{"name": "http", "port": 8088, "targetPort": "http"}]
    policy = by_kind(objects, "NetworkPolicy")[DASHBOARD]
    assert policy["spec"]["ingress"] == [{"ports": [{"port": 8088, "protocol": "TCP"}]}]


def _rules_of(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return list(by_kind(objects, kind)[DASHBOARD]["rules"])


def test_rbac_is_read_only_on_exactly_the_watched_kinds() -> None:
    objects = render(ON)
    rules = _rules_of(objects, "ClusterRole")
    granted = {(group, resource) for r in rules for group in r["apiGroups"] for resource in r["resources"]}
    watched = {(res.group, res.plural) for res in watching.KINDS}
    assert granted == watched
    assert {verb for r in rules for verb in r["verbs"]} == {"get", "list", "watch"}
    assert not {"secrets", "configmaps"} & {res for _, res in granted}
    assert all("nonResourceURLs" not in r for r in rules)
    binding = by_kind(objects, "ClusterRoleBinding")[DASHBOARD]
    assert binding["roleRef"]["name"] == DASHBOARD
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": DASHBOARD, "namespace": NAMESPACE}]
    # metricsAuth: the dashboard's token may get /metrics, through the release's metrics-reader role.
    reader = by_kind(objects, "ClusterRoleBinding")[f"{DASHBOARD}-metrics-reader"]
    assert reader["roleRef"]["name"] == "wf-wasmfleet-metrics-reader"
    assert by_kind(objects, "ClusterRole")["wf-wasmfleet-metrics-reader"]["rules"] == [
        {"nonResourceURLs": ["/metrics"], "verbs": ["get"]}]
    off = render({**ON, "metricsAuth": {"enabled": False}})
    assert f"{DASHBOARD}-metrics-reader" not in by_kind(off, "ClusterRoleBinding")


def test_one_namespace_means_a_role_in_that_namespace() -> None:
    objects = render(dashboard_values(namespace="apps"))
    assert DASHBOARD not in by_kind(objects, "ClusterRole")
    assert DASHBOARD not in by_kind(objects, "ClusterRoleBinding")
    role, binding = by_kind(objects, "Role")[DASHBOARD], by_kind(objects, "RoleBinding")[DASHBOARD]
    assert role["metadata"]["namespace"] == binding["metadata"]["namespace"] == "apps"
    assert {verb for r in role["rules"] for verb in r["verbs"]} == {"get", "list", "watch"}
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": DASHBOARD}
    assert env_of(by_kind(objects, "Deployment")[DASHBOARD])["WASMFLEET_DASHBOARD_NAMESPACE"] == "apps"


def test_no_token_and_no_auth_header_generates_a_token_secret() -> None:
    objects = render(ON)
    secret = by_kind(objects, "Secret")[f"{DASHBOARD}-token"]
    token = base64.b64decode(secret["data"]["token"]).decode()
    assert len(token) >= 32 and token.isalnum()
    assert token_ref(objects) == {"name": f"{DASHBOARD}-token", "key": "token"}
    assert "WASMFLEET_DASHBOARD_AUTH_HEADER" not in env_of(by_kind(objects, "Deployment")[DASHBOARD])
    again = by_kind(render(ON), "Secret")[f"{DASHBOARD}-token"]["data"]["token"]
    assert again != secret["data"]["token"]  # random (kept across upgrades by lookup, not offline)


def test_given_token_and_existing_secret() -> None:
    given = render(dashboard_values(token="s3cret-token"))
    assert base64.b64decode(by_kind(given, "Secret")[f"{DASHBOARD}-token"]["data"]["token"]) == b"s3cret-token"
    assert token_ref(given) == {"name": f"{DASHBOARD}-token", "key": "token"}
    existing = render(dashboard_values(existingSecret="my-dash", existingSecretKey="viewer-token"))
    assert f"{DASHBOARD}-token" not in by_kind(existing, "Secret")
    assert token_ref(existing) == {"name": "my-dash", "key": "viewer-token"}


def test_auth_header_is_passed_and_replaces_the_generated_token() -> None:
    objects = render(dashboard_values(authHeader="X-Forwarded-User"))
    assert env_of(by_kind(objects, "Deployment")[DASHBOARD])["WASMFLEET_DASHBOARD_AUTH_HEADER"] == "X-Forwarded-User"
    assert token_ref(objects) is None
    assert f"{DASHBOARD}-token" not in by_kind(objects, "Secret")
    both = render(dashboard_values(authHeader="X-Forwarded-User", token="t0ken"))
    assert token_ref(both) is not None
    assert env_of(by_kind(both, "Deployment")[DASHBOARD])["WASMFLEET_DASHBOARD_AUTH_HEADER"] == "X-Forwarded-User"


@pytest.mark.parametrize(("values", "named"), [
    (dashboard_values(generateToken=False), "dashboard.authHeader"),
    (dashboard_values(token="a", existingSecret="b"), "dashboard.existingSecret"),
    (dashboard_values(existingSecret="b", existingSecretKey=""), "dashboard.existingSecretKey"),
    (dashboard_values(authHeader="X Forwarded: User"), "dashboard.authHeader"),
    (dashboard_values(namespace="Not_A_Namespace"), "dashboard.namespace"),
    (dashboard_values(metricsUrls=["gateway:80/metrics"]), "dashboard.metricsUrls"),
    (dashboard_values(port=0), "dashboard.port"),
    (dashboard_values(metricsInterval=0.1), "dashboard.metricsInterval"),
])
def test_values_that_cannot_work_fail_naming_the_value(values: dict[str, Any], named: str) -> None:
    with pytest.raises(helm.HelmError) as caught:
        render(values)
    assert named in str(caught.value), str(caught.value)


def test_notes_say_how_to_reach_it_and_where_the_token_is() -> None:
    manifests = helm.Chart.load(str(CHART)).render(ON, name="wf", namespace=NAMESPACE, is_install=True)
    notes = next(text for path, text in manifests.items() if path.endswith("NOTES.txt"))
    assert f"kubectl -n {NAMESPACE} port-forward svc/{DASHBOARD} 8088:8088" in notes
    assert f"get secret {DASHBOARD}-token -o jsonpath='{{.data.token}}'" in notes


# ------------------------------------------------------------------------------------ running it


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except (urllib.error.URLError, OSError) as exc:
        return 0, str(exc)


def _first_metrics_event(url: str, token: str, timeout_s: float,
                         settled: Callable[[dict[str, Any]], bool] = lambda _: True) -> dict[str, Any]:
    """The first `event: metrics` of an SSE stream after a scrape round (one target is never reachable)
    that `settled` accepts; the last one seen when none did within `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request, timeout=10) as resp:
            name = ""
            for raw in resp:
                line = raw.decode().rstrip("\n")
                if line.startswith("event: "):
                    name = line[7:]
                elif line.startswith("data: ") and name == "metrics":
                    last = json.loads(line[6:])
                    # Every URL is scraped each round: once one shows an error, a round has run.
                    if any(t["error"] for t in last["targets"]) and settled(last):
                        return last
                if time.monotonic() > deadline:
                    break
    return last


def test_rendered_configuration_starts_a_working_dashboard(tmp_path: Path) -> None:
    host_metrics = f"http://hostgroup-default.{NAMESPACE}.svc:9090/metrics"
    objects = render(dashboard_values(metricsUrls=[host_metrics]))
    deployments = by_kind(objects, "Deployment")
    token = base64.b64decode(by_kind(objects, "Secret")[f"{DASHBOARD}-token"]["data"]["token"]).decode()
    rendered_kubeconfig = by_kind(objects, "ConfigMap")["wf-wasmfleet-kubeconfig"]["data"]["kubeconfig"]
    dashboard_port, gateway_port, nothing_port = free_port(), free_port(), free_port()

    with running_apiserver(tmp_path / "api") as admin_kubeconfig:
        # What the pod gets from Kubernetes: its service-account token and CA as files (here the embedded
        # server's), and the kubeconfig ConfigMap at its mount path (with the API server's address).
        admin = yaml.safe_load(admin_kubeconfig.read_text())
        cluster, user = admin["clusters"][0]["cluster"], admin["users"][0]["user"]
        account = tmp_path / "serviceaccount"
        account.mkdir()
        (account / "ca.crt").write_bytes(base64.b64decode(cluster["certificate-authority-data"]))
        (account / "token").write_text(user["token"])
        in_cluster = (rendered_kubeconfig.replace("https://kubernetes.default.svc", cluster["server"])
                      .replace("/var/run/secrets/kubernetes.io/serviceaccount/", f"{account}/"))
        (tmp_path / "kubeconfig").write_text(in_cluster)
        kubectl = [str(Path(sys.executable).parent / "kubectl"), "--kubeconfig", str(admin_kubeconfig)]
        workload = {
            "apiVersion": "runtime.wasmcloud.dev/v1alpha1", "kind": "Workload",
            "metadata": {"name": "shown", "namespace": "default"},
            "spec": {"hostSelector": {"hostgroup": "default"},
                     "components": [{"name": "app", "image": "file:///nowhere/app.wasm"}],
                     "hostInterfaces": [{"namespace": "wasi", "package": "http", "interfaces": ["incoming-handler"],
                                         "config": {"host": "shown.localhost"}}]},
        }
        (tmp_path / "workload.yaml").write_text(yaml.safe_dump(workload))
        applied = subprocess.run([*kubectl, "apply", "-f", str(tmp_path / "workload.yaml")],
                                 capture_output=True, text=True)
        assert applied.returncode == 0, applied.stderr

        moves = {
            "/etc/wasmfleet/kubeconfig/kubeconfig": str(tmp_path / "kubeconfig"),
            "0.0.0.0:8088": f"0.0.0.0:{dashboard_port}",  # still not loopback: the token is required
            f"http://wf-wasmfleet-gateway.{NAMESPACE}.svc:80/": f"http://127.0.0.1:{gateway_port}/",
            host_metrics: f"http://127.0.0.1:{nothing_port}/metrics",  # nothing listens: a scrape error
        }

        def pod_env(deployment: str) -> dict[str, str]:
            env = {}
            for key, value in env_of(deployments[deployment]).items():
                for old, new in moves.items():
                    value = value.replace(old, new)
                env[key] = value
            return env

        dash_env = {**pod_env(DASHBOARD), "WASMFLEET_DASHBOARD_TOKEN": token}  # secretKeyRef, resolved
        gateway_env = {**pod_env("wf-wasmfleet-gateway"), "WASMFLEET_GATEWAY_LISTEN": "127.0.0.1",
                       "WASMFLEET_GATEWAY_PORT": str(gateway_port)}
        assert dash_env["WASMFLEET_DASHBOARD_METRICS_URL"].split() == [f"http://127.0.0.1:{gateway_port}/metrics",
                                                                       f"http://127.0.0.1:{nothing_port}/metrics"]
        gateway_args = deployments["wf-wasmfleet-gateway"]["spec"]["template"]["spec"]["containers"][0]["args"]
        with process([*WF, *gateway_args], gateway_env, tmp_path / "gateway.log"), \
                process([*WF, *container(objects)["args"]], dash_env, tmp_path / "dashboard.log"):
            base = f"http://127.0.0.1:{dashboard_port}"
            status, body = 0, ""
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and status != 200:
                status, body = _get(f"{base}/healthz")
                time.sleep(0.3)
            logs = "".join(f"--- {p.name}\n{p.read_text()[-2500:]}\n" for p in sorted(tmp_path.glob("*.log")))
            assert status == 200 and json.loads(body)["synced"] is True, f"{status} {body}\n{logs}"

            assert _get(f"{base}/")[0] == 401
            status, page = _get(f"{base}/workloads", {"Authorization": f"Bearer {token}"})
            assert status == 200 and "shown" in page, page[:500]

            # The dashboard may scrape before the gateway listens (both just started): wait for a
            # round that reached it; if none does, the assertions below show the last round's errors.
            gateway_metrics = f"http://127.0.0.1:{gateway_port}/metrics"
            event = _first_metrics_event(
                f"{base}/stream?page=/workloads/default/shown", token, 30,
                settled=lambda ev: any(t["url"] == gateway_metrics and not t["error"] for t in ev["targets"]))
            targets = {t["url"]: t["error"] for t in event.get("targets", [])}
            logs = "".join(f"--- {p.name}\n{p.read_text()[-2500:]}\n" for p in sorted(tmp_path.glob("*.log")))
            assert set(targets) == {f"http://127.0.0.1:{gateway_port}/metrics",
                                    f"http://127.0.0.1:{nothing_port}/metrics"}, f"{event}\n{logs}"
            # metricsAuth is on in the gateway's rendered env: it accepted the dashboard's token.
            assert gateway_env["WASMFLEET_GATEWAY_METRICS_AUTH"] == "true"
            assert targets[f"http://127.0.0.1:{gateway_port}/metrics"] == "", f"{event}\n{logs}"
            assert targets[f"http://127.0.0.1:{nothing_port}/metrics"].startswith("unreachable"), event
            # Without a token the gateway refuses /metrics: the empty error above was the token's doing.
            assert _get(f"http://127.0.0.1:{gateway_port}/metrics", {"Host": "metrics.local"})[0] == 401
