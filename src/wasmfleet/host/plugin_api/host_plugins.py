"""The contract of a host plugin: the interfaces it provides, the config it accepts, its lifecycle.

Every host interface, the built-in WASI 0.2 ones included, comes from a plugin found through the
entry-point group `wasmfleet.host_interfaces` (see docs/plugins.md). An entry point names a
zero-argument callable (usually the plugin class) returning a `HostPlugin`; nothing registers
itself at import time. The host:

- links the plugin's `interfaces()` into components that import them (exact `package@version`
  for pre-release versions such as 0.2.0-draft, any patch of the same minor for 0.x.y releases);
- checks the config of each hostInterfaces entry naming one of its packages at workload start
  (`config_problems`), so a missing required key or an unknown backend fails the start with a
  message naming the entry and the key, never a trap inside the guest;
- calls `start_host` once per host process before the first workload that is granted the plugin's
  packages (connections shared by every workload there), `start_workload`/`stop_workload` around
  each such workload, and `stop_host` when the data plane stops;
- advertises what is installed in its heartbeats (the scheduler places workloads on it).

Host functions run on the thread that runs the guest; they find their workload through
`store_state.state()` (workload id, component, grants with their config, config, environment).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from wasmfleet.bus.connection_options import NatsConnectionOptions
from wasmfleet.host.plugin_api.interfaces import Interface

ENTRY_POINT_GROUP = "wasmfleet.host_interfaces"
"""Where plugins (built-in and third-party alike) are declared, in their package's metadata."""


class PluginError(Exception):
    """A plugin could not be loaded or is inconsistent (its message names the plugin)."""


@dataclass(frozen=True)
class ConfigKey:
    """One key a hostInterfaces entry's `config` may carry for this plugin."""

    name: str
    required: bool = False
    """A start whose entry lacks the key fails."""
    choices: tuple[str, ...] = ()
    """Accepted values (e.g. backends); empty = any value."""
    doc: str = ""
    """One line for docs and error messages."""


@dataclass(frozen=True)
class HostContext:
    """What a plugin may share across the workloads of one host process.

    The data-plane NATS connection lives here, in one place, for every plugin that keeps workloads'
    data on NATS (keyvalue, blobstore, messaging): `nats_url` and `nats_connection` are the data
    plane's servers and login (`wasmfleet host --data-nats`, `--data-nats-*`; under `wasmfleet up`
    the `data` identity), never the host's control login, which may not touch JetStream.
    Connect with `nats.connect(url, **host.nats_connect_kwargs(url))`.
    """

    host_id: str = ""
    nats_url: str = ""
    """The data plane's NATS servers, comma-separated ('' = none: `wasmfleet serve` without flags)."""
    nats_connection: NatsConnectionOptions = field(default_factory=NatsConnectionOptions)
    """Credentials and TLS of the data-plane identity on `nats_url`."""

    def nats_connect_kwargs(self, url: str) -> dict[str, Any]:
        """`nats.connect()` keyword arguments (login, TLS) for `url`: the data-plane identity's when
        `url` is the host's data plane, none for other servers an entry's config.url names (they are
        the user's own, reached as that URL says, e.g. nats://user:pass@server)."""
        return self.nats_connection.connect_kwargs() if url == self.nats_url else {}


@dataclass(frozen=True)
class WorkloadContext:
    """One component of a workload granted one of the plugin's packages, at its start."""

    workload_id: str
    component: str
    entries: tuple[Mapping[str, str], ...] = ()
    """The config of each hostInterfaces entry naming one of the plugin's packages."""
    names: tuple[str | None, ...] = ()
    """The `name` of each of those entries (None for the unnamed one), in the same order."""
    config: Mapping[str, str] = field(default_factory=dict)
    """The component's localResources.config."""
    environment: Mapping[str, str] = field(default_factory=dict)
    """The component's localResources.environment."""


class HostPlugin:
    """Base of a host plugin. Subclasses set the class attributes and implement `interfaces`."""

    name: str = ""
    """Short name, the entry point's name (e.g. "wasi-config")."""
    version: str = ""
    """The WIT package version of every interface it provides (e.g. "0.2.0-rc.1")."""
    config_keys: tuple[ConfigKey, ...] = ()
    open_config: bool = False
    """True when an entry's config may carry keys beyond `config_keys` (values for the guest)."""
    exports: tuple[str, ...] = ()
    """Interfaces the host calls on components ("wasi:http/incoming-handler"), for heartbeats."""

    def interfaces(self) -> tuple[Interface, ...]:
        """The interfaces this plugin implements, named "namespace:package/interface"."""
        raise NotImplementedError

    def packages(self) -> tuple[str, ...]:
        """"namespace:package" of every interface and export, in first-seen order."""
        names = [i.name for i in self.interfaces()] + list(self.exports)
        return tuple(dict.fromkeys(n.partition("/")[0] for n in names))

    def config_problems(self, config: Mapping[str, str]) -> list[str]:
        """What is wrong with one hostInterfaces entry's config, one "key: reason" line each.
        The default checks `config_keys`; override to add rules between keys (and call this)."""
        problems = []
        known = {key.name: key for key in self.config_keys}
        for key in self.config_keys:
            value = config.get(key.name)
            if value is None:
                if key.required:
                    problems.append(f"config.{key.name}: required ({key.doc})" if key.doc
                                    else f"config.{key.name}: required")
            elif key.choices and value not in key.choices:
                problems.append(f"config.{key.name}: unknown value {value!r} (expected one of "
                                f"{', '.join(key.choices)})")
        if not self.open_config:
            for name in config:
                if name not in known:
                    accepted = ", ".join(known) or "none"
                    problems.append(f"config.{name}: unknown key (accepted: {accepted})")
        return problems

    def start_host(self, host: HostContext) -> None:
        """Opens what every workload of this host process shares (connections). Default: nothing."""

    def stop_host(self) -> None:
        """Closes what `start_host` opened. Default: nothing."""

    def start_workload(self, workload: WorkloadContext) -> None:
        """Prepares per-workload state before the component's first call. Default: nothing."""

    def stop_workload(self, workload_id: str) -> None:
        """Drops the workload's state once no component of it is loaded here. Default: nothing."""


def version_accepts(provided: str, imported: str | None) -> bool:
    """Whether an import of `imported` links to an interface provided at `provided`.

    Pre-release versions (0.2.0-draft, 0.2.0-rc.1) match exactly; releases match any patch of the
    same major (and, for 0.x, the same minor), as wasmtime's own semver matching does.
    """
    if imported is None or not provided:
        return True
    if "-" in provided or "-" in imported or "+" in imported:
        return provided == imported
    p, i = provided.split("."), imported.split(".")
    if len(p) != 3 or len(i) != 3:
        return provided == imported
    if p[0] != i[0]:
        return False
    return p[0] != "0" or p[1] == i[1]
