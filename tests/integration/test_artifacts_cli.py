"""`wasmfleet push` / `wasmfleet pull` (the real CLI in a subprocess) against a real docker-registry,
anonymous and with htpasswd basic auth, cross-checked with the `oras` client.

Checks: push then pull round-trips the component's bytes (anonymous; with --username/--password;
with $WASMFLEET_REGISTRY_USERNAME/PASSWORD; with a docker config.json under $DOCKER_CONFIG; on a
registry that hands out bearer tokens, where a push asks for the pull,push scope);
`oras` pulls what we pushed and sees upstream's media types (OCI manifest, wasm config, layer
application/wasm) and the org.opencontainers.image.created annotation plus given --annotation
values; `oras` pushes with the older application/vnd.module.wasm.content.layer.v1+wasm layer type
and `wasmfleet pull` and the host's fetcher accept it; a wrong manifest digest is refused, and a
layer whose bytes do not match their digest (served through a tampering proxy) is refused with no
file written; bad or missing credentials give exactly one line on stderr and exit code 1; a core
module is refused by push naming the cause; a registry on an address that is not loopback-by-name
(127.0.0.2, through a faithful proxy) is spoken to over TLS unless --insecure is given.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import oras.client
import pytest
import tampering_registry

from wasmfleet.artifacts.fetching import ArtifactSettings, Fetcher
from wasmfleet.artifacts.oci import Credentials
from wasmfleet.testing.oci_registry_server import Registry, running_registry

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.components.build import build_component

USER, PASSWORD = "alice", "s3cret"
LEGACY_LAYER = "application/vnd.module.wasm.content.layer.v1+wasm"


@pytest.fixture(scope="module")
def component() -> Path:
    return build_component("hello-wat")


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    with running_registry(tmp_path_factory.mktemp("registry")) as reg:
        yield reg


@pytest.fixture(scope="module")
def private(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    with running_registry(tmp_path_factory.mktemp("private"), users={USER: PASSWORD}) as reg:
        yield reg


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WASMFLEET_REGISTRY_", "DOCKER_CONFIG"))}
    env["HOME"] = env.get("WASMFLEET_TEST_HOME", "/nonexistent")  # no ~/.docker/config.json of the machine
    return {**env, **extra}


async def wasmfleet(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "wasmfleet", *args, env=env or clean_env(), cwd=cwd,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


async def test_push_then_pull_round_trips_anonymously(registry: Registry, component: Path, tmp_path: Path) -> None:
    code, out, err = await wasmfleet("push", f"{registry.host}/cli/hello:1", str(component))
    assert code == 0, err
    assert f"layer    {sha(component.read_bytes())}" in out
    code, out, err = await wasmfleet("pull", f"{registry.host}/cli/hello:1", cwd=tmp_path)
    assert code == 0, err
    assert (tmp_path / "hello.wasm").read_bytes() == component.read_bytes()  # default name: <repo>.wasm


async def test_credentials_from_flags_env_and_docker_config(
    private: Registry, component: Path, tmp_path: Path
) -> None:
    image = f"{private.host}/team/app:1"
    code, _, err = await wasmfleet("push", image, str(component), "-u", USER, "-p", PASSWORD)
    assert code == 0, err
    env = clean_env(WASMFLEET_REGISTRY_USERNAME=USER, WASMFLEET_REGISTRY_PASSWORD=PASSWORD)
    code, _, err = await wasmfleet("pull", image, str(tmp_path / "env.wasm"), env=env)
    assert code == 0, err
    assert (tmp_path / "env.wasm").read_bytes() == component.read_bytes()
    docker = tmp_path / "docker"
    docker.mkdir()
    auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    (docker / "config.json").write_text(json.dumps({"auths": {f"http://{private.host}": {"auth": auth}}}))
    code, _, err = await wasmfleet("pull", image, str(tmp_path / "cfg.wasm"), env=clean_env(DOCKER_CONFIG=str(docker)))
    assert code == 0, err
    assert (tmp_path / "cfg.wasm").read_bytes() == component.read_bytes()


async def test_bad_credentials_are_one_line_and_fail(private: Registry, component: Path, tmp_path: Path) -> None:
    image = f"{private.host}/team/app:2"
    code, out, err = await wasmfleet("push", image, str(component), "-u", USER, "-p", "wrong")
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and "denied (401)" in err and "wrong" not in err, err
    code, _, err = await wasmfleet("pull", image, str(tmp_path / "x.wasm"))
    assert code == 1 and err.count("\n") == 1 and "requires credentials" in err, err
    assert not (tmp_path / "x.wasm").exists()


def oras_client(registry: Registry, *, auth: bool = False) -> oras.client.OrasClient:
    client = oras.client.OrasClient(hostname=registry.host, insecure=True, auth_backend="basic" if auth else "token")
    if auth:
        client.login(USER, PASSWORD, hostname=registry.host)
    return client


async def test_oras_reads_what_we_push(registry: Registry, component: Path, tmp_path: Path) -> None:
    image = f"{registry.host}/cli/checked:1"
    code, _, err = await wasmfleet("push", image, str(component), "-a", "org.opencontainers.image.source=https://x.test/src")
    assert code == 0, err
    client = oras_client(registry)
    manifest = await asyncio.to_thread(client.get_manifest, image)
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert manifest["config"]["mediaType"] == "application/vnd.wasm.config.v0+json"
    assert [layer["mediaType"] for layer in manifest["layers"]] == ["application/wasm"]
    assert manifest["annotations"]["org.opencontainers.image.source"] == "https://x.test/src"
    assert manifest["annotations"]["org.opencontainers.image.created"].endswith("Z")
    files = await asyncio.to_thread(client.pull, target=image, outdir=str(tmp_path / "oras"))
    assert [Path(f).read_bytes() for f in files] == [component.read_bytes()]


async def test_legacy_layer_type_pushed_by_oras_is_accepted(
    private: Registry, component: Path, tmp_path: Path
) -> None:
    image = f"{private.host}/legacy/hello:1"
    staged = tmp_path / "hello.wasm"
    staged.write_bytes(component.read_bytes())
    client = oras_client(private, auth=True)
    cwd = os.getcwd()
    os.chdir(tmp_path)  # oras keeps the path given as the layer title: push a relative one
    try:
        await asyncio.to_thread(client.push, target=image, files=[f"hello.wasm:{LEGACY_LAYER}"])
    finally:
        os.chdir(cwd)
    assert (await asyncio.to_thread(client.get_manifest, image))["layers"][0]["mediaType"] == LEGACY_LAYER
    code, _, err = await wasmfleet("pull", image, str(tmp_path / "out.wasm"), "-u", USER, "-p", PASSWORD)
    assert code == 0, err
    assert (tmp_path / "out.wasm").read_bytes() == component.read_bytes()
    async with Fetcher(ArtifactSettings(cache_dir=tmp_path / "cache")) as fetcher:
        got = await fetcher.fetch(image, credentials=Credentials(USER, PASSWORD))
    assert got.path.read_bytes() == component.read_bytes()


async def test_wrong_digests_are_refused(registry: Registry, component: Path, tmp_path: Path) -> None:
    code, _, err = await wasmfleet("push", f"{registry.host}/cli/pinned:1", str(component))
    assert code == 0, err
    wrong = "sha256:" + "0" * 64
    code, _, err = await wasmfleet("pull", f"{registry.host}/cli/pinned@{wrong}", str(tmp_path / "a.wasm"))
    assert code == 1 and "not found" in err and err.count("\n") == 1, err
    async with tampering_registry.tampering_proxy(registry.url) as proxy:
        code, _, err = await wasmfleet("pull", f"{proxy}/cli/pinned:1", str(tmp_path / "b.wasm"))
    assert code == 1 and "digest mismatch" in err and err.count("\n") == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing written, no stray temp dirs


async def test_push_refuses_a_core_module(registry: Registry, tmp_path: Path) -> None:
    core = tmp_path / "core.wasm"
    core.write_bytes(b"\0asm\x01\0\0\0")
    code, _, err = await wasmfleet("push", f"{registry.host}/cli/core:1", str(core))
    assert code == 1 and "core module, not a wasm component" in err, err


async def test_insecure_speaks_plain_http_to_other_registries(
    registry: Registry, component: Path, tmp_path: Path
) -> None:
    async with tampering_registry.tampering_proxy(registry.url, tamper=False, bind="127.0.0.2") as proxy:
        image = f"{proxy}/cli/insecure:1"
        code, _, err = await wasmfleet("push", image, str(component))
        assert code == 1 and err.count("\n") == 1 and "unreachable" in err, err  # TLS to a plain-HTTP port
        code, _, err = await wasmfleet("push", image, str(component), "--insecure")
        assert code == 0, err
        code, _, err = await wasmfleet("pull", image, str(tmp_path / "i.wasm"), "--insecure")
        assert code == 0, err
    assert (tmp_path / "i.wasm").read_bytes() == component.read_bytes()


async def test_push_and_pull_with_bearer_tokens(component: Path, tmp_path: Path) -> None:
    with running_registry(tmp_path / "tokens", token_users={"carol": "t0ken"}) as reg:
        image = f"{reg.host}/team/tok:1"
        code, _, err = await wasmfleet("push", image, str(component), "-u", "carol", "-p", "t0ken")
        assert code == 0, err
        code, _, err = await wasmfleet("pull", image, str(tmp_path / "t.wasm"), "-u", "carol", "-p", "t0ken")
        assert code == 0, err
        code, _, err = await wasmfleet("push", image, str(component), "-u", "carol", "-p", "nope")
        assert code == 1 and err.count("\n") == 1 and "refused the credentials" in err, err
    assert (tmp_path / "t.wasm").read_bytes() == component.read_bytes()
