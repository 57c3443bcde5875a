"""What the chart renders, run for real on this machine (there is no Kubernetes cluster here):

- nats-server starts from the rendered nats.conf (single server with TLS; and `nats-server -t`
  accepts the three-server cluster configuration) using the certificates of the rendered Secrets;
- the operator, a host of the `default` group and the gateway run from this virtualenv with exactly
  the environment variables and arguments of their rendered containers; only what a pod gets from
  Kubernetes is supplied here: the downward-API values, files at their mount paths (moved to a temp
  dir), loopback addresses for the cluster DNS names and free ports for the fixed ones;
- the host joins NATS over TLS with its generated client certificate, the operator places a
  WorkloadDeployment of examples/hello (from a real local OCI registry) on it, and the gateway
  answers a request with it;
- the data plane: a WorkloadDeployment of tests/components/keyvalue-py (wasi:keyvalue, the host's
  default NATS backend) sets and gets a key through the gateway. The host reaches JetStream only as
  the data-plane identity the chart gives it (WASMFLEET_HOST_DATA_NATS_TLS_*: the control identity's
  account has no JetStream), and the value is read back from the bucket with the data certificate.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml
from chart_rendering import NAMESPACE, REPO, by_kind, env_of, local_nats_conf, process, render, write_secret

from wasmfleet.testing.apiserver import running_apiserver
from wasmfleet.testing.nats import free_port, nats_server_binary
from wasmfleet.testing.oci_registry_server import push_wasm, running_registry

sys.path.insert(0, str(REPO))
from tests.components.build import build_component

pytestmark = pytest.mark.timeout(240)

WF = [sys.executable, "-m", "wasmfleet"]
HOSTNAME = "hello.localhost"
KV_HOSTNAME = "kv.localhost"


def expand(value: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion of container env values."""
    return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m.group(1), m.group(0)), value)


def pod_env(container_env: dict[str, str], downward: dict[str, str], moves: dict[str, str]) -> dict[str, str]:
    env = dict(downward)
    for key, value in container_env.items():
        value = expand(value, env)
        for old, new in moves.items():
            value = value.replace(old, new)
        env[key] = value
    return env


def test_clustered_nats_configuration_is_accepted_by_nats_server(tmp_path: Path) -> None:
    objects = render({"nats": {"replicas": 3}})
    write_secret(by_kind(objects, "Secret")["wf-wasmfleet-nats-tls"], tmp_path / "nats-tls")
    conf = by_kind(objects, "ConfigMap")["wf-wasmfleet-nats"]["data"]["nats.conf"]
    (tmp_path / "nats.conf").write_text(local_nats_conf(conf, tmp_path, free_port(), free_port()))
    checked = subprocess.run([str(nats_server_binary()), "-t", "-c", str(tmp_path / "nats.conf")],
                             capture_output=True, text=True, env={**os.environ, "POD_NAME": "wf-wasmfleet-nats-0"})
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_rendered_configuration_serves_a_workload_over_tls_nats(tmp_path: Path) -> None:
    objects = render()
    secrets = by_kind(objects, "Secret")
    deployments = by_kind(objects, "Deployment")
    for role in ("nats", "operator", "host", "data"):
        write_secret(secrets[f"wf-wasmfleet-{role}-tls"], tmp_path / f"{role}-tls")

    nats_port, monitor_port, gateway_port, metrics_port = free_port(), free_port(), free_port(), free_port()
    conf = by_kind(objects, "ConfigMap")["wf-wasmfleet-nats"]["data"]["nats.conf"]
    (tmp_path / "nats.conf").write_text(local_nats_conf(conf, tmp_path, nats_port, monitor_port))
    nats_conf_args = [str(nats_server_binary()), "-c", str(tmp_path / "nats.conf")]

    with process(nats_conf_args, {"POD_NAME": "wf-wasmfleet-nats-0"}, tmp_path / "nats.log"), \
            running_apiserver(tmp_path / "api") as kubeconfig, \
            running_registry(tmp_path / "registry") as registry:
        kubectl_env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
        kubectl = str(Path(sys.executable).parent / "kubectl")
        subprocess.run([kubectl, "create", "namespace", NAMESPACE], env=kubectl_env, capture_output=True)
        # What a pod of each role gets from Kubernetes, on this machine.
        in_cluster = {
            f"tls://wf-wasmfleet-nats.{NAMESPACE}.svc:4222": f"tls://localhost:{nats_port}",
            "/etc/wasmfleet/kubeconfig/kubeconfig": str(kubeconfig),
            "/var/lib/wasmfleet": str(tmp_path / "host-scratch"),
        }
        downward = {"POD_NAMESPACE": NAMESPACE, "POD_IP": "127.0.0.1"}
        roles = {
            "operator": ("wf-wasmfleet-operator", {"0.0.0.0:8081": "127.0.0.1:0"}),
            "host": ("hostgroup-default", {"0.0.0.0:8080": "127.0.0.1:0", "0.0.0.0:9090": f"127.0.0.1:{metrics_port}"}),
            "gateway": ("wf-wasmfleet-gateway", {}),
        }
        with contextlib.ExitStack() as stack:
            for role, (deployment, ports) in roles.items():
                container = deployments[deployment]["spec"]["template"]["spec"]["containers"][0]
                moves = {**in_cluster, **ports, "/etc/wasmfleet/nats-tls/": f"{tmp_path}/{role}-tls/",
                         "/etc/wasmfleet/data-nats-tls/": f"{tmp_path}/data-tls/"}
                env = pod_env(env_of(deployments[deployment]), {**downward, "POD_NAME": f"{deployment}-0"}, moves)
                if role == "gateway":
                    env.update(WASMFLEET_GATEWAY_LISTEN="127.0.0.1", WASMFLEET_GATEWAY_PORT=str(gateway_port))
                stack.enter_context(process([*WF, *container["args"]], env, tmp_path / f"{role}.log"))

            push_wasm(registry, "examples/hello", "1", (REPO / "examples" / "hello" / "hello.wasm").read_bytes())
            manifest = yaml.safe_load((REPO / "examples" / "hello" / "deployment.yaml").read_text())
            manifest["spec"]["replicas"] = 1
            manifest["spec"]["template"]["spec"]["components"][0]["image"] = f"{registry.host}/examples/hello:1"
            (tmp_path / "hello.yaml").write_text(yaml.safe_dump(manifest))
            applied = subprocess.run([kubectl, "apply", "-f", str(tmp_path / "hello.yaml")], env=kubectl_env,
                                     capture_output=True, text=True)
            assert applied.returncode == 0, applied.stderr

            status, headers, body = 0, {}, ""
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                status, headers, body = get(f"http://127.0.0.1:{gateway_port}/", HOSTNAME)
                if status == 200:
                    break
                time.sleep(0.5)
            logs = "".join(f"--- {p.name}\n{p.read_text()[-2500:]}\n" for p in sorted(tmp_path.glob("*.log")))
            assert status == 200 and body == "hello from wasmfleet\n", f"{status} {body[:200]}\n{logs}"
            assert headers.get("X-Wasmfleet-Host"), headers  # answered by a host, through the gateway
            hosts = subprocess.run([kubectl, "get", "hosts", "-n", NAMESPACE, "-o", "name"], env=kubectl_env,
                                   capture_output=True, text=True, check=True).stdout
            assert "hostgroup-default-0" in hosts, hosts
            ready = get(f"http://127.0.0.1:{metrics_port}/readyz", "localhost")
            assert ready[0] == 200, ready

            # The data plane: wasi:keyvalue on the host's default backend (NATS JetStream KV).
            push_wasm(registry, "tests/keyvalue", "1", build_component("keyvalue-py").read_bytes())
            kv_manifest = {
                "apiVersion": "runtime.wasmcloud.dev/v1alpha1", "kind": "WorkloadDeployment",
                "metadata": {"name": "kv", "namespace": NAMESPACE},
                "spec": {"replicas": 1, "template": {"spec": {
                    "hostSelector": {"hostgroup": "default"},
                    "components": [{"name": "kv", "image": f"{registry.host}/tests/keyvalue:1"}],
                    "hostInterfaces": [
                        {"namespace": "wasi", "package": "http", "interfaces": ["incoming-handler"],
                         "config": {"host": KV_HOSTNAME}},
                        {"namespace": "wasi", "package": "keyvalue", "version": "0.2.0-draft",
                         "interfaces": ["store", "atomics", "batch"]},
                    ]}}},
            }
            (tmp_path / "kv.yaml").write_text(yaml.safe_dump(kv_manifest))
            applied = subprocess.run([kubectl, "apply", "-f", str(tmp_path / "kv.yaml")], env=kubectl_env,
                                     capture_output=True, text=True)
            assert applied.returncode == 0, applied.stderr
            gateway = f"http://127.0.0.1:{gateway_port}"
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                status, _, body = get(f"{gateway}/set?id=chartkv&key=k&value=on-the-data-plane", KV_HOSTNAME)
                if status == 200:
                    break
                time.sleep(0.5)
            logs = "".join(f"--- {p.name}\n{p.read_text()[-2500:]}\n" for p in sorted(tmp_path.glob("*.log")))
            assert status == 200 and json.loads(body) == {"ok": None}, f"{status} {body[:300]}\n{logs}"
            status, _, body = get(f"{gateway}/get?id=chartkv&key=k", KV_HOSTNAME)
            assert json.loads(body) == {"ok": b"on-the-data-plane".hex()}, body
            stored = asyncio.run(read_as_data_plane(f"tls://localhost:{nats_port}", tmp_path / "data-tls"))
            assert stored == b"on-the-data-plane", stored


async def read_as_data_plane(url: str, certs: Path) -> bytes:
    """Key k of bucket chartkv, read with the data plane's client certificate."""
    import nats

    context = ssl.create_default_context(cafile=str(certs / "ca.crt"))
    context.load_cert_chain(str(certs / "tls.crt"), str(certs / "tls.key"))
    nc = await nats.connect(url, tls=context, connect_timeout=5)
    try:
        entry = await (await nc.jetstream().key_value("chartkv")).get("k")
        return bytes(entry.value or b"")
    finally:
        await nc.close()


def get(url: str, host: str) -> tuple[int, dict[str, str], str]:
    request = urllib.request.Request(url, headers={"Host": host})
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return resp.status, dict(resp.headers), resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read().decode()
    except (urllib.error.URLError, OSError) as exc:
        return 0, {}, str(exc)
