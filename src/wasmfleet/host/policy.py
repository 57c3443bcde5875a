"""What a start request may ask of this host: local files, host directories, memory, CPU.

Whoever can send `workload.start` chooses images and volumes, so the host decides what it lends:

- a `file://` (or absolute-path) image only under an allowed root (`--allow-file-root`, repeatable);
- a hostPath volume only under an allowed prefix (`--allow-host-path`, repeatable), and it must exist
  and be a directory;
- a component's memoryLimitMb at most `--max-component-memory-mb`; a component that sets none gets
  the cap as its limit when the runtime's default (512 MB) is above it (otherwise leaving the field
  out would lift the cap);
- a component's or the service's cpuLimit (millicores) at most `--max-component-cpu`; one that sets
  none gets the cap. The runtime enforces it as a per-guest-thread quota (runtime.cpu_quota).

Paths are compared after resolving symlinks and `..`, so /allowed/link-to-etc is judged by where it
points. With no flags nothing from the local filesystem is allowed (`wasmfleet up` allows its own
examples and data directories). `check` runs before anything is fetched or created, and a refusal
names the option that would allow it. Upstream leaves cpuLimit's unit open; wasmfleet reads it as
millicores, as Kubernetes writes CPU.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from wasmfleet.artifacts import references
from wasmfleet.bus import messages
from wasmfleet.host import translation
from wasmfleet.host.runtime import specs


def _runtime_default_memory_mb() -> int:
    default = next(f.default for f in dataclasses.fields(specs.RuntimeSettings) if f.name == "memory_limit_mb")
    return default if isinstance(default, int) else 0


RUNTIME_DEFAULT_MEMORY_MB = _runtime_default_memory_mb()
"""What the runtime gives a component that sets no memoryLimitMb (specs.RuntimeSettings)."""


_Runnable = TypeVar("_Runnable", messages.Component, messages.Service)


class PolicyRefusal(translation.InvalidWorkload):
    """The request asks for something this host's policy does not allow (permanent, like any
    invalid workload: the same request is refused the same way)."""


@dataclass(frozen=True)
class HostPolicy:
    file_roots: tuple[Path, ...] = ()
    """Directories file:// images may be read from (and their subdirectories); () = none."""
    host_path_prefixes: tuple[Path, ...] = ()
    """Directories hostPath volumes may name (or lie under); () = none."""
    max_component_memory_mb: int = 0
    """Upper bound of a component's memoryLimitMb, and its limit when it sets none and the runtime's
    default is larger; 0 = no cap."""
    max_component_cpu_millicores: int = 0
    """Upper bound of a component's or the service's cpuLimit, and its limit when it sets none;
    0 = no cap."""

    @staticmethod
    def allowing(*roots: Path) -> HostPolicy:
        """File images and host paths under `roots`, no memory cap (tests, embedding callers)."""
        return HostPolicy(file_roots=tuple(roots), host_path_prefixes=tuple(roots))

    def check(self, workload: messages.Workload) -> messages.Workload:
        """Raise PolicyRefusal for the first thing not allowed; return the workload with the memory
        cap applied to components that set no limit."""
        components = list(workload.wit_world.components)
        if workload.service is not None:
            self._check_image(workload.service.image, "service")
            self._check_memory(workload.service.local_resources, "service")
            self._check_cpu(workload.service.local_resources, "service")
        for index, component in enumerate(components):
            name = component.name or f"component-{index}"
            self._check_image(component.image, f"component {name}")
            self._check_memory(component.local_resources, f"component {name}")
            self._check_cpu(component.local_resources, f"component {name}")
        for volume in workload.volumes:
            if volume.host_path is not None:
                self._check_host_path(volume.name, volume.host_path.local_path)
        if not self.max_component_memory_mb and not self.max_component_cpu_millicores:
            return workload
        capped = [self._with_caps(component) for component in components]
        world = workload.wit_world.model_copy(update={"components": capped})
        service = self._with_caps(workload.service) if workload.service is not None else None
        return workload.model_copy(update={"wit_world": world, "service": service})

    def _check_image(self, image: str, what: str) -> None:
        if not image:
            return
        try:
            ref = references.parse(image)
        except references.InvalidReference:
            return  # not a local file; the fetcher reports the bad reference itself
        if not isinstance(ref, references.FileRef):
            return
        resolved = _resolved(ref.path)
        if not _under_any(resolved, self.file_roots):
            raise PolicyRefusal(
                f"{what}: image {image} is a local file outside the roots this host allows "
                f"({_listing(self.file_roots)}); see the host's --allow-file-root"
            )

    def _check_host_path(self, volume: str, local_path: str) -> None:
        path = Path(local_path)
        if not path.is_absolute():
            raise PolicyRefusal(f"volume {volume}: hostPath {local_path} is not absolute")
        resolved = _resolved(path)
        if not _under_any(resolved, self.host_path_prefixes):
            raise PolicyRefusal(
                f"volume {volume}: hostPath {local_path} is outside the prefixes this host allows "
                f"({_listing(self.host_path_prefixes)}); see the host's --allow-host-path"
            )
        if not resolved.is_dir():
            raise PolicyRefusal(f"volume {volume}: hostPath {local_path} is not an existing directory on this host")

    def _check_memory(self, resources: messages.LocalResources, what: str) -> None:
        cap = self.max_component_memory_mb
        if cap and resources.memory_limit_mb > cap:
            raise PolicyRefusal(
                f"{what}: memoryLimitMb {resources.memory_limit_mb} exceeds this host's cap of {cap} MB; "
                "see the host's --max-component-memory-mb"
            )

    def _check_cpu(self, resources: messages.LocalResources, what: str) -> None:
        cap = self.max_component_cpu_millicores
        if cap and resources.cpu_limit > cap:
            raise PolicyRefusal(
                f"{what}: cpuLimit {resources.cpu_limit} millicores exceeds this host's cap of {cap}; "
                "see the host's --max-component-cpu"
            )

    def _with_caps(self, part: _Runnable) -> _Runnable:
        """A component or the service, with the caps as its limits where it sets none."""
        resources = part.local_resources
        update: dict[str, int] = {}
        # Its own memory limit (checked), or the runtime's default when that is within the cap.
        memory_cap = self.max_component_memory_mb
        if memory_cap and resources.memory_limit_mb <= 0 and memory_cap < RUNTIME_DEFAULT_MEMORY_MB:
            update["memory_limit_mb"] = memory_cap
        if self.max_component_cpu_millicores and resources.cpu_limit <= 0:
            update["cpu_limit"] = self.max_component_cpu_millicores
        if not update:
            return part
        return part.model_copy(update={"local_resources": resources.model_copy(update=update)})


def _resolved(path: Path) -> Path:
    return Path(os.path.realpath(path))


def _under_any(path: Path, roots: tuple[Path, ...]) -> bool:
    return any(path == root or root in path.parents for root in (_resolved(r) for r in roots))


def _listing(roots: tuple[Path, ...]) -> str:
    return "none" if not roots else ", ".join(str(r) for r in roots)
