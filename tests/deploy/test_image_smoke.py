"""The container image, built for real (scripts/build-image: mmdebstrap bookworm base, wheels, podman
build) and run with buildah (chroot isolation, host network; `podman run` cannot set rlimits here):

1. the image runs as the non-root user 10001, has wasmfleet as its entrypoint and the OCI labels;
2. an unknown role, and a bad setting in a WASMFLEET_* variable, each print one line and exit 2;
3. `wasmfleet host` from the image, configured only through WASMFLEET_HOST_* variables, joins a
   loopback nats-server; with the embedded API server, the operator and the gateway run from this
   virtualenv, a WorkloadDeployment of examples/hello (pulled by the host from a real local OCI
   registry) is placed on it and a request through the gateway is answered by it.

Marked `image` (select with `-m image`, leave out with `-m "not image"`); it needs podman, buildah
and mmdebstrap (scripts/deps.d/image.sh) and takes about a minute and a half.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from wasmfleet.testing.apiserver import running_apiserver
from wasmfleet.testing.nats import free_port, running_nats_server
from wasmfleet.testing.oci_registry_server import push_wasm, running_registry

pytestmark = [pytest.mark.image, pytest.mark.timeout(600)]

REPO = Path(__file__).resolve().parents[2]
TAG = "localhost/wasmfleet:smoke-test"
WF = [sys.executable, "-m", "wasmfleet"]
HOSTNAME = "hello.localhost"


@pytest.fixture(scope="module")
def image() -> Iterator[str]:
    started = time.monotonic()
    proc = subprocess.run([str(REPO / "scripts" / "build-image"), TAG], capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    print(f"\nimage build: {time.monotonic() - started:.1f} s; {proc.stdout.strip().splitlines()[-1]}")
    yield TAG


@contextlib.contextmanager
def container(image: str) -> Iterator[str]:
    name = subprocess.run(["buildah", "from", "--quiet", image], capture_output=True, text=True,
                          check=True).stdout.strip()
    try:
        yield name
    finally:
        subprocess.run(["buildah", "rm", name], capture_output=True)


def run_in(ctr: str, *argv: str, env: dict[str, str] | None = None, timeout: float = 60
           ) -> subprocess.CompletedProcess[str]:
    flags = [arg for key, value in (env or {}).items() for arg in ("--env", f"{key}={value}")]
    return subprocess.run(["buildah", "run", "--isolation", "chroot", "--network", "host", *flags, ctr, "--", *argv],
                          capture_output=True, text=True, timeout=timeout)


def program_stderr(proc: subprocess.CompletedProcess[str]) -> list[str]:
    """The program's stderr lines: buildah appends its own report of the exit status."""
    return [line for line in proc.stderr.strip().splitlines()
            if line != f"Error: exit status {proc.returncode}"
            and line != f"subprocess exited with status {proc.returncode}"]


def test_image_is_non_root_with_entrypoint_and_labels(image: str) -> None:
    config = json.loads(subprocess.run(["podman", "image", "inspect", image], capture_output=True, text=True,
                                       check=True).stdout)[0]
    assert config["Config"]["User"] == "10001:10001"
    assert config["Config"]["Entrypoint"] == ["wasmfleet"]
    labels = config["Config"]["Labels"]
    assert labels["org.opencontainers.image.title"] == "wasmfleet"
    assert labels["org.opencontainers.image.version"] == "0.1.0"
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"
    with container(image) as ctr:
        ids = run_in(ctr, "id", "-u")
        assert ids.stdout.strip() == "10001", ids.stderr
        version = run_in(ctr, "wasmfleet", "--version")
        assert version.returncode == 0 and "0.1.0" in version.stdout, version.stderr


def test_unknown_role_and_bad_setting_are_one_line_errors(image: str) -> None:
    with container(image) as ctr:
        unknown = run_in(ctr, "wasmfleet", "frobnicate")
        assert unknown.returncode == 2
        assert program_stderr(unknown) == [
            "wasmfleet: No such command 'frobnicate'. (see 'wasmfleet --help')"]
        bad = run_in(ctr, "wasmfleet", "host", env={"WASMFLEET_HOST_WORKERS": "many"})
        assert bad.returncode == 2
        lines = program_stderr(bad)
        assert len(lines) == 1 and "WASMFLEET_HOST_WORKERS" in lines[0] and "'many'" in lines[0], bad.stderr


@contextlib.contextmanager
def background(argv: list[str], log: Path, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[bytes]]:
    with open(log, "ab") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, **(env or {})})
    try:
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def get(url: str, host: str) -> tuple[int, dict[str, str], str]:
    request = urllib.request.Request(url, headers={"Host": host})
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return resp.status, dict(resp.headers), resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read().decode()
    except (urllib.error.URLError, OSError) as exc:
        return 0, {}, str(exc)


def test_host_from_the_image_serves_a_workload(image: str, tmp_path: Path) -> None:
    gateway_port = free_port()
    with running_nats_server(tmp_path / "nats") as nats_url, \
            running_apiserver(tmp_path / "api") as kubeconfig, \
            running_registry(tmp_path / "registry") as registry, \
            background([*WF, "operator", "--kubeconfig", str(kubeconfig), "--nats", nats_url,
                        "--listen", "127.0.0.1:0", "--lease-duration", "4"], tmp_path / "operator.log"), \
            background([*WF, "gateway", "--kubeconfig", str(kubeconfig), "--port", str(gateway_port)],
                       tmp_path / "gateway.log"), \
            container(image) as ctr:
        push_wasm(registry, "examples/hello", "1", (REPO / "examples" / "hello" / "hello.wasm").read_bytes())
        # Only WASMFLEET_HOST_* variables: the way the chart configures hosts.
        host_env = {"WASMFLEET_HOST_NATS": nats_url, "WASMFLEET_HOST_NAME": "from-the-image",
                    "WASMFLEET_HOST_GROUP": "default", "WASMFLEET_HOST_HTTP_ADDR": "127.0.0.1:0",
                    "WASMFLEET_HOST_HEARTBEAT_INTERVAL": "1"}
        flags = [arg for key, value in host_env.items() for arg in ("--env", f"{key}={value}")]
        with background(["buildah", "run", "--isolation", "chroot", "--network", "host", *flags, ctr, "--",
                         "wasmfleet", "host"], tmp_path / "host.log"):
            manifest = yaml.safe_load((REPO / "examples" / "hello" / "deployment.yaml").read_text())
            manifest["spec"]["replicas"] = 1
            manifest["spec"]["template"]["spec"]["components"][0]["image"] = f"{registry.host}/examples/hello:1"
            (tmp_path / "hello.yaml").write_text(yaml.safe_dump(manifest))
            applied = subprocess.run([*WF, "apply", "-f", str(tmp_path / "hello.yaml")], capture_output=True,
                                     text=True, env={**os.environ, "KUBECONFIG": str(kubeconfig)}, timeout=60)
            assert applied.returncode == 0, applied.stderr

            deadline = time.monotonic() + 90
            status, headers, body = 0, {}, ""
            while time.monotonic() < deadline:
                status, headers, body = get(f"http://127.0.0.1:{gateway_port}/", HOSTNAME)
                if status == 200:
                    break
                time.sleep(0.5)
            logs = "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in tmp_path.glob("*.log"))
            assert status == 200, f"last answer {status} {body[:200]}\n{logs}"
            hosts = json.loads(subprocess.run(
                [str(Path(sys.executable).parent / "kubectl"), "get", "hosts", "-A", "-o", "json"],
                capture_output=True, text=True, check=True,
                env={**os.environ, "KUBECONFIG": str(kubeconfig)}).stdout)["items"]
            names = {h.get("metadata", {}).get("name"): h for h in hosts}
            served_by = headers.get("X-Wasmfleet-Host", "")
            assert len(hosts) == 1, names
            (only,) = hosts
            assert served_by and served_by in json.dumps(only), (served_by, only)
            assert "from-the-image" in json.dumps(only)
            assert body == "hello from wasmfleet\n", body
