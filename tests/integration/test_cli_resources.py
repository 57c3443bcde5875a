"""`wasmfleet apply / get / describe / delete` as a user runs them, against the real embedded API server.

Checks:
- apply reports created, then unchanged, then configured after an edit; stdin works;
- get prints the server's printer columns (as kubectl does) and `No ... found` when empty;
  -o yaml/json/name; -A adds NAMESPACE; short names (wd, ww) resolve;
- kubectl with the same kubeconfig sees what wasmfleet applied;
- describe shows spec, conditions (from /status) and Events about the object;
- delete removes (and waits), and a missing object exits 1 with one line;
- user errors (unknown kind, bad manifest, missing kubeconfig) are one line on stderr, no traceback.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from wasmfleet.cli import main
from wasmfleet.testing.apiserver import running_apiserver

pytestmark = pytest.mark.timeout(120)

DEPLOYMENT = """
apiVersion: runtime.wasmcloud.dev/v1alpha1
kind: WorkloadDeployment
metadata:
  name: web
spec:
  replicas: {replicas}
  template:
    spec:
      components:
        - name: web
          image: file:///srv/web.wasm
      hostInterfaces:
        - namespace: wasi
          package: http
          interfaces: [incoming-handler]
          config:
            host: web.localhost
"""


@pytest.fixture(scope="module")
def kubeconfig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with running_apiserver(tmp_path_factory.mktemp("api")) as path:
        yield path


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


def wf(kubeconfig: Path, *args: str, stdin: str | None = None) -> Result:
    """Run a wasmfleet command in-process (same code path as the console script, without paying the
    interpreter start-up for each of the ~25 invocations)."""
    result = CliRunner().invoke(main.cli, [*args, "--kubeconfig", str(kubeconfig)], input=stdin)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Result(result.exit_code, result.stdout, result.stderr)


def test_apply_get_and_kubectl_agree(kubeconfig: Path, tmp_path: Path) -> None:
    manifest = tmp_path / "web.yaml"
    manifest.write_text(DEPLOYMENT.format(replicas=2))
    assert wf(kubeconfig, "apply", "-f", str(manifest)).stdout.strip() == (
        "workloaddeployment.runtime.wasmcloud.dev/web created"
    )
    assert wf(kubeconfig, "apply", "-f", str(manifest)).stdout.strip().endswith("web unchanged")
    again = wf(kubeconfig, "apply", "-f", "-", stdin=DEPLOYMENT.format(replicas=3))
    assert again.stdout.strip().endswith("web configured"), again.stderr

    table = wf(kubeconfig, "get", "wd").stdout.splitlines()
    assert table[0].split()[:2] == ["NAME", "REPLICAS"]
    assert table[1].split()[:2] == ["web", "3"]
    wide = wf(kubeconfig, "get", "workloaddeployments", "-A").stdout.splitlines()
    assert wide[0].split()[:2] == ["NAMESPACE", "NAME"]
    assert wide[1].split()[:2] == ["default", "web"]
    as_yaml = yaml.safe_load(wf(kubeconfig, "get", "wd", "web", "-o", "yaml").stdout)
    assert as_yaml["spec"]["replicas"] == 3
    assert "managedFields" not in as_yaml["metadata"]
    as_json = json.loads(wf(kubeconfig, "get", "wd", "-o", "json").stdout)
    assert [i["metadata"]["name"] for i in as_json["items"]] == ["web"]
    assert wf(kubeconfig, "get", "wd", "-o", "name").stdout.strip() == "workloaddeployment.runtime.wasmcloud.dev/web"
    assert wf(kubeconfig, "get", "ww").stdout.strip() == "No workloads found in default namespace."

    kubectl = shutil.which("kubectl", path=str(Path(sys.executable).parent)) or "kubectl"
    seen = subprocess.run([kubectl, "get", "wd", "web", "-o", "jsonpath={.spec.replicas}"],
                          capture_output=True, text=True, env={**os.environ, "KUBECONFIG": str(kubeconfig)})
    assert seen.stdout == "3", seen.stderr


def test_describe_shows_conditions_and_events(kubeconfig: Path) -> None:
    host = {
        "apiVersion": "runtime.wasmcloud.dev/v1alpha1", "kind": "Host",
        "metadata": {"name": "brave-otter-0001", "labels": {"hostgroup": "default"}},
        "hostId": "H1", "hostname": "127.0.0.1", "httpPort": 4000,
    }
    assert wf(kubeconfig, "apply", "-f", "-", stdin=json.dumps(host)).returncode == 0
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    kubectl = shutil.which("kubectl", path=str(Path(sys.executable).parent)) or "kubectl"
    status = {"status": {"conditions": [{"type": "Ready", "status": "True", "reason": "Heartbeat",
                                         "message": "heartbeat 1s ago",
                                         "lastTransitionTime": "2026-01-01T00:00:00Z"}]}}
    patched = subprocess.run([kubectl, "patch", "host", "brave-otter-0001", "--subresource=status", "--type=merge",
                              "-p", json.dumps(status)], capture_output=True, text=True, env=env)
    assert patched.returncode == 0, patched.stderr
    event = {
        "apiVersion": "v1", "kind": "Event", "metadata": {"name": "brave-otter-0001.1", "namespace": "default"},
        "involvedObject": {"kind": "Host", "name": "brave-otter-0001", "namespace": "default"},
        "reason": "Registered", "message": "host joined the fleet", "type": "Normal",
        "lastTimestamp": "2026-01-01T00:00:00Z",
    }
    assert wf(kubeconfig, "apply", "-f", "-", stdin=json.dumps(event)).returncode == 0
    out = wf(kubeconfig, "describe", "host", "brave-otter-0001").stdout
    assert "Labels:       hostgroup=default" in out
    assert "hostId: H1" in out
    assert "Ready" in out and "heartbeat 1s ago" in out
    assert "Registered" in out and "host joined the fleet" in out
    hosts = wf(kubeconfig, "get", "hosts").stdout.splitlines()
    assert hosts[0].split()[:3] == ["NAME", "HOSTID", "HOSTGROUP"]
    assert hosts[1].split()[:3] == ["brave-otter-0001", "H1", "default"]


def test_delete_and_user_errors(kubeconfig: Path, tmp_path: Path) -> None:
    manifest = tmp_path / "gone.yaml"
    manifest.write_text(DEPLOYMENT.format(replicas=1).replace("name: web\n", "name: gone\n", 1))
    assert wf(kubeconfig, "apply", "-f", str(manifest)).returncode == 0
    deleted = wf(kubeconfig, "delete", "-f", str(manifest))
    assert deleted.stdout.strip() == 'workloaddeployment.runtime.wasmcloud.dev "gone" deleted', deleted.stderr
    missing = wf(kubeconfig, "delete", "wd", "gone")
    assert missing.returncode == 1
    assert missing.stderr.strip() == 'workloaddeployment.runtime.wasmcloud.dev "gone" not found'

    for args, message in [
        (("get", "frobs"), 'the server does not have a resource type "frobs"'),
        (("apply", "-f", str(tmp_path / "nope.yaml")), "no such file or directory"),
    ]:
        proc = wf(kubeconfig, *args)
        assert proc.returncode == 1
        assert message in proc.stderr
        assert "Traceback" not in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: [unclosed\n")
    proc = wf(kubeconfig, "apply", "-f", str(bad))
    assert proc.returncode == 1 and "not valid YAML" in proc.stderr
    # One real process: the console script prints one line and no traceback.
    proc2 = subprocess.run(
        [sys.executable, "-c", "from wasmfleet.cli.main import main; main()", "get", "hosts",
         "--kubeconfig", str(tmp_path / "missing-kubeconfig")], capture_output=True, text=True, timeout=60,
    )
    assert proc2.returncode == 1
    missing_kc = tmp_path / "missing-kubeconfig"
    assert proc2.stderr.strip() == f"Error: kubeconfig {missing_kc} does not exist (is `wasmfleet up` running?)"
