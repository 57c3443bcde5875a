"""The security of issue 17 as the chart carries it, on by default. Checks:

- deploy/chart/files/nats-permissions.json is exactly what scripts/chart_permissions.py renders from
  bus/permissions.py (the one table `wasmfleet up` uses too), and the rendered nats.conf gives each
  role's certificate subject the permissions of that table;
- a real nats-server started from the rendered nats.conf and Secrets (single server, TLS with
  verify_and_map) lets the operator's certificate publish a workload start to a host, which a
  subscriber with the host certificate receives; refuses the host certificate publishing to another
  host's command subjects (or any start); refuses a client without a certificate, and one whose
  certificate the CA did not sign; keeps workloads' JetStream to the data-plane certificate (a KV
  write works there and is refused to the host identity); the operator's certificate publishes a
  component to the artifacts Object Store (CONTROL account) and the host certificate, on its
  _HOSTINBOX prefix, downloads it, but cannot delete it or create a stream capturing runtime.>;
- metrics auth is on by default: operator, gateway and hosts get --metrics-auth, each role's
  ServiceAccount is bound to system:auth-delegator, hosts get a token and a kubeconfig for that
  alone (and no other binding), a ClusterRole grants get on /metrics; metricsAuth.enabled false
  removes all of it;
- an in-release NATS without TLS fails to render (it would have no authentication).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import helm_python as helm
import nats
import nats.errors
import pytest
from chart_rendering import CHART, NAMESPACE, REPO, by_kind, env_of, local_nats_conf, process, render, write_secret
from nats.aio.client import Client as NATS

from wasmfleet.artifacts import cache, object_store, references
from wasmfleet.bus import permissions, subjects
from wasmfleet.testing.nats import free_port, nats_server_binary

pytestmark = pytest.mark.timeout(180)

ROLES = ("operator", "host", "data", "logs")


def test_permission_file_is_rendered_from_the_table() -> None:
    checked = subprocess.run([sys.executable, str(REPO / "scripts" / "chart_permissions.py"), "--check"],
                             capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    conf = by_kind(render(), "ConfigMap")["wf-wasmfleet-nats"]["data"]["nats.conf"]
    for role, perms in permissions.role_table().items():
        line = next(x for x in conf.splitlines() if f'"CN=wf-wasmfleet-{role}"' in x)
        for subject in perms.publish + perms.subscribe:
            assert f'"{subject}"' in line, (role, subject, line)
    assert "verify_and_map: true" in conf


def test_client_subjects_can_be_overridden() -> None:
    conf = by_kind(render({"tls": {"clientSubjects": {"operator": "CN=ops,O=example"}}}), "ConfigMap")[
        "wf-wasmfleet-nats"]["data"]["nats.conf"]
    assert '{user: "CN=ops,O=example"' in conf and "CN=wf-wasmfleet-operator" not in conf


def client_tls(directory: Path | None, ca: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca))
    if directory is not None:
        context.load_cert_chain(str(directory / "tls.crt"), str(directory / "tls.key"))
    return context


async def connect(port: int, tls: ssl.SSLContext, **options: Any) -> Any:
    errors: list[Exception] = []

    async def on_error(exc: Exception) -> None:
        errors.append(exc)

    nc = NATS()
    try:
        await nc.connect(f"tls://localhost:{port}", tls=tls, allow_reconnect=False, connect_timeout=3,
                         max_reconnect_attempts=0, error_cb=on_error, **options)
    except BaseException:
        await nc.close()  # a refused connect leaves its transport open otherwise (ResourceWarning)
        raise
    nc.test_errors = errors  # permission violations arrive asynchronously, through error_cb
    return nc


async def refused_publish(nc: Any, subject: str) -> bool:
    """nats-server answers a forbidden publish with -ERR 'Permissions Violation' (async)."""
    before = len(nc.test_errors)
    await nc.publish(subject, b"{}")
    await nc.flush(timeout=3)
    await asyncio.sleep(0.3)
    return any("permissions violation" in str(e).lower() for e in nc.test_errors[before:])


def test_real_nats_server_enforces_the_roles(tmp_path: Path) -> None:
    objects = render()
    secrets = by_kind(objects, "Secret")
    for role in ("nats", *ROLES):
        write_secret(secrets[f"wf-wasmfleet-{role}-tls"], tmp_path / f"{role}-tls")
    port, monitor = free_port(), free_port()
    conf = by_kind(objects, "ConfigMap")["wf-wasmfleet-nats"]["data"]["nats.conf"]
    (tmp_path / "nats.conf").write_text(local_nats_conf(conf, tmp_path, port, monitor))
    ca = tmp_path / "nats-tls" / "ca.crt"
    # A certificate from another CA: the chart's CA must be what authenticates.
    stranger = tmp_path / "stranger"
    stranger.mkdir()
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    "/CN=wf-wasmfleet-operator", "-keyout", str(stranger / "tls.key"), "-out",
                    str(stranger / "tls.crt")], check=True, capture_output=True)

    async def scenario() -> None:
        operator = await connect(port, client_tls(tmp_path / "operator-tls", ca))
        operator.test_port, operator.test_ca = port, ca
        host = await connect(port, client_tls(tmp_path / "host-tls", ca))
        data = await connect(port, client_tls(tmp_path / "data-tls", ca))
        try:
            # The operator commands a host; a host identity hears it.
            inbox = await host.subscribe("runtime.host.h1.>")
            await host.flush()
            assert not await refused_publish(operator, "runtime.host.h1.workload.start")
            try:
                # A delivery check, not a latency bound (the CI machine is often heavily loaded).
                message = await inbox.next_msg(timeout=10)
            except nats.errors.TimeoutError:
                server_log = (tmp_path / "nats.log").read_text()[-3000:]
                raise AssertionError(f"no delivery; client errors: operator {operator.test_errors}, "
                                     f"host {host.test_errors}\n{server_log}") from None
            assert message.subject == "runtime.host.h1.workload.start"
            # A host cannot command any host (another, or itself), nor pose as the operator's inbox.
            assert await refused_publish(host, "runtime.host.h2.workload.start")
            assert await refused_publish(host, "runtime.host.h1.workload.stop")
            assert await refused_publish(host, "_INBOX.forged")
            # ... but may heartbeat.
            assert not await refused_publish(host, "runtime.operator.heartbeat.h1")
            # JetStream is the data plane's: the data identity writes a KV entry, a host cannot.
            kv = await data.jetstream().create_key_value(bucket="chartcheck")
            await kv.put("k", b"v")
            assert (await kv.get("k")).value == b"v"
            with pytest.raises((nats.errors.Error, asyncio.TimeoutError)):
                await host.jetstream(timeout=2).key_value("chartcheck")
            assert not await refused_publish(data, "app.events")
            assert await refused_publish(data, "runtime.host.h1.workload.start")
            await artifacts_written_by_operator_read_by_hosts(operator, tmp_path)
        finally:
            for nc in (operator, host, data):
                await nc.close()
        for tls in (client_tls(None, ca), client_tls(stranger, ca)):
            with pytest.raises((nats.errors.Error, OSError, asyncio.TimeoutError)):
                nc = await connect(port, tls)
                await nc.close()

    with process([str(nats_server_binary()), "-c", str(tmp_path / "nats.conf")],
                 {"POD_NAME": "wf-wasmfleet-nats-0"}, tmp_path / "nats.log"):
        wait_listening(port, tmp_path / "nats.log")
        asyncio.run(scenario())


async def artifacts_written_by_operator_read_by_hosts(operator: Any, tmp_path: Path) -> None:
    content = b"\0asm chart artifact"
    component = tmp_path / "component.wasm"
    component.write_bytes(content)
    digest = "sha256:" + hashlib.sha256(content).hexdigest()
    await object_store.upload(operator, digest, component, source="registry.test/a:1", media_type="application/wasm")
    host = await connect(operator.test_port, client_tls(tmp_path / "host-tls", operator.test_ca),
                         inbox_prefix=subjects.host_inbox("h1"))
    try:
        blobs = cache.BlobCache(tmp_path / "blobs")
        writer = blobs.writer()
        await object_store.download(host, references.NatsRef(permissions.ARTIFACTS_BUCKET, digest), writer,
                                    max_bytes=1 << 20)
        assert writer.commit(digest) == digest
        assert blobs.blob_path(digest).read_bytes() == content
        assert await refused_publish(host, f"$O.{permissions.ARTIFACTS_BUCKET}.M.forged")
        assert await refused_publish(host, "$JS.API.STREAM.CREATE.capture")
        assert await refused_publish(operator, "$JS.API.STREAM.CREATE.capture")
    finally:
        await host.close()


def wait_listening(port: int, log: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError(f"nats-server did not listen on {port}:\n{log.read_text()[-2000:]}")


def test_metrics_auth_is_on_by_default_with_its_rbac() -> None:
    objects = render()
    deployments = by_kind(objects, "Deployment")
    assert env_of(deployments["wf-wasmfleet-operator"])["WASMFLEET_OPERATOR_METRICS_AUTH"] == "true"
    assert env_of(deployments["wf-wasmfleet-gateway"])["WASMFLEET_GATEWAY_METRICS_AUTH"] == "true"
    host = deployments["hostgroup-default"]
    host_env = env_of(host)
    assert host_env["WASMFLEET_HOST_METRICS_AUTH"] == "true"
    assert host_env["WASMFLEET_HOST_KUBECONFIG"] == "/etc/wasmfleet/kubeconfig/kubeconfig"
    assert host["spec"]["template"]["spec"]["automountServiceAccountToken"] is True
    bindings = by_kind(objects, "ClusterRoleBinding")
    for role in ("operator", "gateway", "host"):
        binding = bindings[f"wf-wasmfleet-{role}-auth-delegator"]
        assert binding["roleRef"]["name"] == "system:auth-delegator"
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": f"wf-wasmfleet-{role}",
                                        "namespace": "wasmfleet-system"}]
    # The host's only binding is the auth delegation (no Role or other ClusterRole).
    host_bindings = [b for b in [*bindings.values(), *by_kind(objects, "RoleBinding").values()]
                     if any(s["name"] == "wf-wasmfleet-host" for s in b["subjects"])]
    assert [b["roleRef"]["name"] for b in host_bindings] == ["system:auth-delegator"]
    reader = by_kind(objects, "ClusterRole")["wf-wasmfleet-metrics-reader"]
    assert reader["rules"] == [{"nonResourceURLs": ["/metrics"], "verbs": ["get"]}]
    scraper = {"kind": "ServiceAccount", "name": "prometheus", "namespace": "monitoring"}
    bound = by_kind(render({"metricsAuth": {"readers": [scraper]}}), "ClusterRoleBinding")
    assert bound["wf-wasmfleet-metrics-reader"]["subjects"] == [scraper]


def test_metrics_auth_off_removes_the_token_and_bindings() -> None:
    objects = render({"metricsAuth": {"enabled": False}})
    deployments = by_kind(objects, "Deployment")
    assert env_of(deployments["wf-wasmfleet-operator"])["WASMFLEET_OPERATOR_METRICS_AUTH"] == "false"
    host = deployments["hostgroup-default"]
    assert "WASMFLEET_HOST_METRICS_AUTH" not in env_of(host)
    assert host["spec"]["template"]["spec"]["automountServiceAccountToken"] is False
    assert not [n for n in by_kind(objects, "ClusterRoleBinding") if n.endswith("auth-delegator")]


def test_release_nats_without_tls_fails_to_render() -> None:
    with pytest.raises(Exception, match=r"tls\.enabled must be true when nats\.enabled"):
        helm.Chart.load(str(CHART)).render({"tls": {"enabled": False}}, name="wf", namespace="ns", is_install=True)


def test_hosts_carry_the_data_plane_certificate() -> None:
    host = by_kind(render(), "Deployment")["hostgroup-default"]["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in host["volumes"]}
    assert volumes["data-nats-tls"]["secret"]["secretName"] == "wf-wasmfleet-data-tls"
    assert os.path.basename("/etc/wasmfleet/data-nats-tls") in {
        Path(m["mountPath"]).name for m in host["containers"][0]["volumeMounts"]}
    env = {e["name"]: e.get("value") for e in host["containers"][0]["env"]}
    assert env["WASMFLEET_HOST_DATA_NATS"] == env["WASMFLEET_HOST_NATS"] == f"tls://wf-wasmfleet-nats.{NAMESPACE}.svc:4222"
    assert env["WASMFLEET_HOST_DATA_NATS_TLS_CA"] == "/etc/wasmfleet/data-nats-tls/ca.crt"
    assert env["WASMFLEET_HOST_DATA_NATS_TLS_CERT"] == "/etc/wasmfleet/data-nats-tls/tls.crt"
    assert env["WASMFLEET_HOST_DATA_NATS_TLS_KEY"] == "/etc/wasmfleet/data-nats-tls/tls.key"
    # The control identity stays the host's own.
    assert env["WASMFLEET_HOST_NATS_TLS_CERT"] == "/etc/wasmfleet/nats-tls/tls.crt"


def test_hosts_data_plane_url_is_a_value_and_needs_no_certificate_without_tls() -> None:
    values = {"nats": {"enabled": False, "url": "nats://control.example:4222"}, "tls": {"enabled": False},
              "hosts": {"dataNats": {"url": "nats://data-1.example:4222,nats://data-2.example:4222"}}}
    host = by_kind(render(values), "Deployment")["hostgroup-default"]["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for e in host["containers"][0]["env"]}
    assert env["WASMFLEET_HOST_NATS"] == "nats://control.example:4222"
    assert env["WASMFLEET_HOST_DATA_NATS"] == "nats://data-1.example:4222,nats://data-2.example:4222"
    assert not any(name.startswith("WASMFLEET_HOST_DATA_NATS_TLS") for name in env), env
    assert "data-nats-tls" not in {v["name"] for v in host["volumes"]}
