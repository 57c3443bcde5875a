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
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from wasmfleet.testing import registry_tokens
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
    tokens: registry_tokens.TokenService | None = None
    """The token service, in token-auth mode (its `issued` counts tokens handed out)."""

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
def running_registry(
    data_dir: Path, *, users: dict[str, str] | None = None, token_users: dict[str, str] | None = None
) -> Iterator[Registry]:
    """`users`: htpasswd basic auth. `token_users`: bearer tokens from a real token service (the
    Docker Hub/GHCR scheme) that knows these users. Neither: anonymous."""
    binary = shutil.which("docker-registry")
    if binary is None:
        raise RegistryError("docker-registry not found: apt-get install docker-registry (scripts/deps.d/registry.sh)")
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    auth = ""
    if users:
        _htpasswd(data_dir / "htpasswd", users)
        auth = f"auth:\n  htpasswd:\n    realm: wasmfleet-test\n    path: {data_dir / 'htpasswd'}\n"
    tokens: registry_tokens.TokenService | None = None
    if token_users is not None:
        tokens = registry_tokens.TokenService(registry_tokens.make_signing_key(data_dir), token_users)
        tokens.start()
        auth = (
            f"auth:\n  token:\n    realm: {tokens.realm}\n    service: {registry_tokens.SERVICE}\n"
            f"    issuer: {registry_tokens.ISSUER}\n    rootcertbundle: {tokens.key.cert}\n"
        )
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
        yield Registry(host=f"127.0.0.1:{port}", process=process, tokens=tokens)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        if tokens is not None:
            tokens.stop()


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
    """One registry call; answers a Bearer challenge by fetching a token (with `auth`) and retrying."""
    basic = None
    if auth is not None:
        basic = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
    first = {**headers, "Authorization": basic} if basic else headers
    try:
        return _send(method, url, data, first)
    except urllib.error.HTTPError as exc:
        challenge = exc.headers.get("WWW-Authenticate", "")
        if exc.code != 401 or not challenge.startswith("Bearer "):
            raise
    params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
    query = urllib.parse.urlencode({"service": params.get("service", ""), "scope": params.get("scope", "")})
    token_headers = {"Authorization": basic} if basic else {}
    with urllib.request.urlopen(
        urllib.request.Request(f"{params['realm']}?{query}", headers=token_headers), timeout=30
    ) as response:
        token = json.loads(response.read())["token"]
    return _send(method, url, data, {**headers, "Authorization": f"Bearer {token}"})


def _send(method: str, url: str, data: bytes | None, headers: dict[str, str]) -> tuple[int, dict[str, str]]:
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
