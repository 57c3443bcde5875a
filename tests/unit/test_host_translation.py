"""From a protocol Workload to runtime ComponentSpecs (wasmfleet.host.translation).

Checks: HTTP hostnames come from the wasi:http incoming-handler entry's config.host (aliases by
comma, lower-cased, de-duplicated, other entries ignored); every hostInterfaces entry becomes a
Grant with its version/name/config; limits <= 0 mean unset; volume mounts become preopens (emptyDir
-> a per-workload dir, hostPath -> that dir, readOnly kept) and mistakes are one-line
InvalidWorkload errors; pull secrets and policies map to the fetcher's types; the socket policy
(allowedIpNameLookups, allowedHostLoopbackPorts) and the private loopback (<scratch>/net) reach the spec.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from wasmfleet.artifacts.fetching import Credentials, PullPolicy
from wasmfleet.bus import messages
from wasmfleet.host import translation


def workload(**kw: object) -> messages.Workload:
    base = {
        "witWorld": {
            "components": [{"name": "api", "image": "x"}],
            "hostInterfaces": [
                {"namespace": "wasi", "package": "http", "interfaces": ["incoming-handler"],
                 "config": {"host": "API.example.com, api.local,api.example.com"}},
                {"namespace": "wasi", "package": "keyvalue", "interfaces": ["store"], "version": "0.2.0-draft",
                 "name": "cache", "config": {"backend": "in-memory"}},
                {"namespace": "wasi", "package": "http", "interfaces": ["outgoing-handler"],
                 "config": {"host": "ignored.example"}},
            ],
        },
    }
    base.update(kw)
    return messages.Workload.model_validate(base)


def test_hostnames_come_from_the_incoming_handler_entry() -> None:
    assert translation.http_hostnames(workload()) == ["api.example.com", "api.local"]
    assert translation.http_hostnames(messages.Workload()) == []


def test_every_host_interface_becomes_a_grant() -> None:
    grants = translation.grants(workload())
    assert [(g.namespace, g.package, g.interfaces) for g in grants] == [
        ("wasi", "http", ("incoming-handler",)),
        ("wasi", "keyvalue", ("store",)),
        ("wasi", "http", ("outgoing-handler",)),
    ]
    kv = grants[1]
    assert (kv.version, kv.name, kv.config) == ("0.2.0-draft", "cache", {"backend": "in-memory"})
    assert grants[0].version is None and grants[0].name is None


def test_component_spec_maps_resources_and_treats_nonpositive_limits_as_unset(tmp_path: Path) -> None:
    wl = workload()
    component = messages.Component.model_validate({
        "name": "api", "image": "x", "poolSize": -1, "maxInvocations": 0, "maxConcurrency": 0,
        "localResources": {"memoryLimitMb": -5, "config": {"k": "v"}, "environment": {"E": "1"},
                           "allowedHosts": ["example.com"]},
    })
    spec = translation.component_spec("w1", component, 0, tmp_path / "c.wasm", wl, {})
    assert (spec.workload_id, spec.name, spec.wasm_path) == ("w1", "api", tmp_path / "c.wasm")
    assert (spec.pool_size, spec.max_invocations, spec.max_concurrency, spec.memory_limit_mb) == (0, 0, 1, 0)
    assert spec.config == {"k": "v"} and spec.environment == {"E": "1"}
    assert spec.allowed_hosts == ("example.com",)
    assert len(spec.grants) == 3
    unnamed = translation.component_spec("w1", messages.Component(image="x"), 2, tmp_path / "c.wasm", wl, {})
    assert unnamed.name == "component-2"


def test_component_spec_carries_the_private_loopback_and_socket_policy(tmp_path: Path) -> None:
    component = messages.Component.model_validate({
        "name": "api", "image": "x",
        "localResources": {"allowedHosts": ["db.internal"], "allowedIpNameLookups": ["*.svc"],
                           "allowedHostLoopbackPorts": ["5432", "53/udp"]},
    })
    loopback = translation.loopback_dir(tmp_path / "scratch")
    spec = translation.component_spec("w1", component, 0, tmp_path / "c.wasm", workload(), {}, loopback)
    assert loopback == tmp_path / "scratch" / "net"  # removed with the scratch dir on stop
    assert spec.network.loopback_dir == loopback
    assert spec.network.allowed_ip_name_lookups == ("*.svc",)
    assert spec.network.allowed_host_loopback_ports == ("5432", "53/udp")
    assert spec.allowed_hosts == ("db.internal",)


def test_volumes_become_preopens(tmp_path: Path) -> None:
    host_dir = tmp_path / "shared"
    host_dir.mkdir()
    wl = workload(volumes=[{"name": "scratch", "emptyDir": {}},
                           {"name": "shared", "hostPath": {"localPath": str(host_dir)}}])
    dirs = translation.volume_dirs(wl, tmp_path / "wl")
    assert dirs["scratch"] == tmp_path / "wl" / "volumes" / "scratch" and dirs["scratch"].is_dir()
    assert dirs["shared"] == host_dir
    resources = messages.LocalResources.model_validate({"volumeMounts": [
        {"name": "scratch", "mountPath": "/tmp"}, {"name": "shared", "mountPath": "/data", "readOnly": True},
    ]})
    preopens = translation.preopens(resources, dirs, "api")
    assert [(p.host_path, p.guest_path, p.read_only) for p in preopens] == [
        (dirs["scratch"], "/tmp", False), (host_dir, "/data", True),
    ]


@pytest.mark.parametrize(
    ("volumes", "mounts", "expected"),
    [
        ([{"name": "h", "hostPath": {"localPath": "/definitely/not/here"}}], [], "is not a directory"),
        ([{"name": "h", "hostPath": {"localPath": "relative"}}], [], "is not absolute"),
        ([{"emptyDir": {}}], [], "has no name"),
        ([], [{"name": "missing", "mountPath": "/x"}], "names no workload volume"),
        ([{"name": "v", "emptyDir": {}}], [{"name": "v", "mountPath": "x"}], "is not absolute"),
    ],
)
def test_volume_mistakes_are_one_line_errors(
    tmp_path: Path, volumes: list[dict[str, object]], mounts: list[dict[str, object]], expected: str
) -> None:
    wl = workload(volumes=volumes)
    with pytest.raises(translation.InvalidWorkload, match=expected) as info:
        dirs = translation.volume_dirs(wl, tmp_path)
        translation.preopens(messages.LocalResources.model_validate({"volumeMounts": mounts}), dirs, "api")
    assert "\n" not in str(info.value)


def test_pull_secrets_and_policies() -> None:
    assert translation.credentials(None) is None
    assert translation.credentials(messages.ImagePullSecret()) is None
    assert translation.credentials(messages.ImagePullSecret(username="u", password="p")) == Credentials("u", "p")
    assert translation.pull_policy(messages.ImagePullPolicy.NEVER) is PullPolicy.NEVER
    assert translation.pull_policy(messages.ImagePullPolicy.UNSPECIFIED) is PullPolicy.UNSPECIFIED
