"""A real OCI registry (Debian's `docker-registry`, CNCF distribution 2.8) for tests and benchmarks,
and a plain-HTTP pusher of single-layer wasm artifacts.

    with running_registry(tmp_path) as reg:                       # anonymous
    with running_registry(tmp_path, users={"u": "p"}) as reg:     # htpasswd basic auth
        push_wasm(reg, "hello", "1", wasm_bytes, auth=("u", "p"))
        image = f"{reg.host}/hello:1"

The registry binary and `htpasswd` (apache2-utils) come from apt: scripts/deps.d/registry.sh.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from wasmfleet.testing.nats import free_port

WASM_LAYER = "application/wasm"
WASM_CONFIG = "application/vnd.wasm.config.v0+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


class RegistryError(RuntimeError):
    """docker-registry is missing or did not start."""


@dataclass(frozen=True)
class Registry:
    host: str
    """host:port, what goes in an image reference."""

    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://{self.host}"


def _htpasswd(path: Path, users: dict[str, str]) -> None:
    binary = shutil.which("htpasswd")
    if binary is None:
        raise RegistryError("htpasswd not found: apt-get install apache2-utils (scripts/deps.d/registry.sh)")
    lines = []
    for user, password in users.items():
        out = subprocess.run([binary, "-Bbn", user, password], check=True, capture_output=True, text=True)
        lines.append(out.stdout.strip())
    path.write_text("\n".join(lines) + "\n")


@contextlib.contextmanager
def running_registry(data_dir: Path, *, users: dict[str, str] | None = None) -> Iterator[Registry]:
    binary = shutil.which("docker-registry")
    if binary is None:
        raise RegistryError("docker-registry not found: apt-get install docker-registry (scripts/deps.d/registry.sh)")
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    auth = ""
    if users:
        _htpasswd(data_dir / "htpasswd", users)
        auth = f"auth:\n  htpasswd:\n    realm: wasmfleet-test\n    path: {data_dir / 'htpasswd'}\n"
    config = data_dir / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: warn\n"
        f"storage:\n  filesystem:\n    rootdirectory: {data_dir / 'storage'}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n" + auth
    )
    log = open(data_dir / "registry.log", "ab")  # noqa: SIM115 - closed in finally
    process = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_ready(f"http://127.0.0.1:{port}/v2/", process)
        yield Registry(host=f"127.0.0.1:{port}", process=process)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _wait_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RegistryError(f"docker-registry exited with code {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except urllib.error.HTTPError:
            return  # 401 from an auth-enabled registry: it is up
        except OSError:
            time.sleep(0.05)
    raise RegistryError("docker-registry not ready within 15 s")


def _request(
    method: str, url: str, data: bytes | None, headers: dict[str, str], auth: tuple[str, str] | None
) -> tuple[int, dict[str, str]]:
    if auth is not None:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        headers = {**headers, "Authorization": f"Basic {token}"}
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    with urllib.request.urlopen(req, timeout=60) as response:
        return response.status, dict(response.headers)


def _push_blob(registry: Registry, repo: str, blob: bytes, auth: tuple[str, str] | None) -> str:
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    _, headers = _request("POST", f"{registry.url}/v2/{repo}/blobs/uploads/", b"", {}, auth)
    location = headers["Location"]
    if location.startswith("/"):
        location = registry.url + location
    separator = "&" if "?" in location else "?"
    _request(
        "PUT", f"{location}{separator}digest={digest}", blob,
        {"Content-Type": "application/octet-stream"}, auth,
    )
    return digest


def push_wasm(
    registry: Registry, repo: str, tag: str, wasm: bytes, *, auth: tuple[str, str] | None = None
) -> str:
    """Push a single-layer wasm artifact (the wasm OCI artifact layout); returns the layer digest."""
    config = b"{}"
    config_digest = _push_blob(registry, repo, config, auth)
    layer_digest = _push_blob(registry, repo, wasm, auth)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": WASM_CONFIG, "digest": config_digest, "size": len(config)},
        "layers": [{"mediaType": WASM_LAYER, "digest": layer_digest, "size": len(wasm)}],
    }
    _request(
        "PUT", f"{registry.url}/v2/{repo}/manifests/{tag}", json.dumps(manifest).encode(),
        {"Content-Type": OCI_MANIFEST}, auth,
    )
    return layer_digest
