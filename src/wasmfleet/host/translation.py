"""From a protocol Workload to what the runtime runs: grants, HTTP hostnames, preopens, specs.

Pure functions plus the creation of per-workload directories; the fetching and the runtime calls are
in `workloads`. Problems with the request itself raise `InvalidWorkload` with a one-line reason that
ends up in the Workload's status.
"""

from __future__ import annotations

from pathlib import Path

from wasmfleet.artifacts.fetching import Credentials, PullPolicy
from wasmfleet.bus import http_routing, messages
from wasmfleet.host.runtime import specs


class InvalidWorkload(ValueError):
    """The start request cannot be run as given (permanent: the same request fails the same way)."""


_POLICIES = {
    messages.ImagePullPolicy.UNSPECIFIED: PullPolicy.UNSPECIFIED,
    messages.ImagePullPolicy.ALWAYS: PullPolicy.ALWAYS,
    messages.ImagePullPolicy.IF_NOT_PRESENT: PullPolicy.IF_NOT_PRESENT,
    messages.ImagePullPolicy.NEVER: PullPolicy.NEVER,
}


def pull_policy(policy: messages.ImagePullPolicy) -> PullPolicy:
    return _POLICIES[policy]


def credentials(secret: messages.ImagePullSecret | None) -> Credentials | None:
    if secret is None or not (secret.username or secret.password):
        return None
    return Credentials(secret.username, secret.password)


def is_http_handler(entry: messages.WitInterface) -> bool:
    return http_routing.is_http_handler(entry.namespace, entry.package, entry.interfaces)


def http_hostnames(workload: messages.Workload) -> list[str]:
    """Host header names this workload serves, by the shared routing contract (`bus.http_routing`):
    config ``host`` and ``host-aliases`` of its wasi:http incoming-handler entries (comma lists; the
    operator adds the Kubernetes Service's names to ``host-aliases``), normalised, without duplicates."""
    return list(http_routing.message_route_names(workload))


def grants(workload: messages.Workload) -> tuple[specs.Grant, ...]:
    return tuple(
        specs.Grant(
            namespace=entry.namespace,
            package=entry.package,
            interfaces=tuple(entry.interfaces),
            version=entry.version or None,
            name=entry.name or None,
            config=dict(entry.config),
        )
        for entry in workload.wit_world.host_interfaces
    )


def volume_dirs(workload: messages.Workload, scratch: Path) -> dict[str, Path]:
    """Host directory of each workload volume; ephemeral ones are created under `scratch`."""
    dirs: dict[str, Path] = {}
    for volume in workload.volumes:
        if not volume.name:
            raise InvalidWorkload("a volume has no name")
        if volume.host_path is not None:
            path = Path(volume.host_path.local_path)
            if not path.is_absolute():
                raise InvalidWorkload(f"volume {volume.name}: hostPath {path} is not absolute")
            if not path.is_dir():
                raise InvalidWorkload(f"volume {volume.name}: hostPath {path} is not a directory on this host")
            dirs[volume.name] = path
        else:  # emptyDir, or no type given: a fresh per-workload directory
            path = scratch / "volumes" / volume.name
            path.mkdir(parents=True, exist_ok=True)
            dirs[volume.name] = path
    return dirs


def preopens(
    resources: messages.LocalResources, volumes: dict[str, Path], owner: str
) -> tuple[specs.Preopen, ...]:
    """`owner` names who mounts them in errors: "component NAME" or "service"."""
    result = []
    for mount in resources.volume_mounts:
        if mount.name not in volumes:
            raise InvalidWorkload(f"{owner}: volumeMount {mount.name!r} names no workload volume")
        if not mount.mount_path.startswith("/"):
            raise InvalidWorkload(f"{owner}: mountPath {mount.mount_path!r} is not absolute")
        result.append(specs.Preopen(volumes[mount.name], mount.mount_path, mount.read_only))
    return tuple(result)


def loopback_dir(scratch: Path) -> Path:
    """The workload's private loopback for wasi:sockets (see `host.wasi.private_loopback`): under
    its scratch directory, so it is removed with it when the workload stops. Every component and
    the service of the workload must get this same directory (`network_access`)."""
    return scratch / "net"


def network_access(resources: messages.LocalResources, loopback: Path | None) -> specs.NetworkAccess:
    """What wasi:sockets may reach besides the private loopback (allowedHosts is separate)."""
    return specs.NetworkAccess(
        loopback_dir=loopback,
        allowed_ip_name_lookups=tuple(resources.allowed_ip_name_lookups),
        allowed_host_loopback_ports=tuple(resources.allowed_host_loopback_ports),
    )


def component_name(component: messages.Component, index: int) -> str:
    return component.name or f"component-{index}"


def component_spec(
    workload_id: str,
    component: messages.Component,
    index: int,
    wasm_path: Path,
    workload: messages.Workload,
    volumes: dict[str, Path],
    loopback: Path | None = None,
) -> specs.ComponentSpec:
    """The runtime's description of one component. Limits <= 0 mean "unset" on the wire.
    `loopback`: the workload's private loopback directory (`loopback_dir(scratch)`)."""
    name = component_name(component, index)
    resources = component.local_resources
    return specs.ComponentSpec(
        workload_id=workload_id,
        name=name,
        wasm_path=wasm_path,
        grants=grants(workload),
        config=dict(resources.config),
        environment=dict(resources.environment),
        allowed_hosts=tuple(resources.allowed_hosts),
        network=network_access(resources, loopback),
        preopens=preopens(resources, volumes, f"component {name}"),
        pool_size=max(component.pool_size, 0),
        max_invocations=max(component.max_invocations, 0),
        max_concurrency=component.max_concurrency if component.max_concurrency > 0 else 1,
        memory_limit_mb=max(resources.memory_limit_mb, 0),
        cpu_limit_millicores=max(resources.cpu_limit, 0),
    )


SERVICE_NAME = "service"
"""The service's name in the workload's log, status and host log (the manifest gives it none)."""


def service_spec(
    workload_id: str, service: messages.Service, wasm_path: Path, workload: messages.Workload,
    volumes: dict[str, Path], loopback: Path | None = None,
) -> specs.ComponentSpec:
    """The runtime's description of the workload's service: the same grants as its components (the
    workload's hostInterfaces) and its own localResources (config, environment, volumeMounts as
    preopens, allowedHosts, memoryLimitMb; <= 0 means unset on the wire). It is run as a command
    (runtime.commands.Command), so the pool and concurrency settings do not apply."""
    resources = service.local_resources
    return specs.ComponentSpec(
        workload_id=workload_id,
        name=SERVICE_NAME,
        wasm_path=wasm_path,
        grants=grants(workload),
        config=dict(resources.config),
        environment=dict(resources.environment),
        allowed_hosts=tuple(resources.allowed_hosts),
        network=network_access(resources, loopback),  # the components' private loopback
        preopens=preopens(resources, volumes, SERVICE_NAME),  # errors say "service: ..."
        memory_limit_mb=max(resources.memory_limit_mb, 0),
        cpu_limit_millicores=max(resources.cpu_limit, 0),
    )
