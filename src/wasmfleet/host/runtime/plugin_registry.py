"""The host plugins installed here: found once per process through the entry-point group.

Built-in interfaces (WASI 0.2, wasi:config, wasi:logging) are declared in wasmfleet's own
pyproject.toml exactly like a third-party plugin's, so there is one path for both and nothing
registers itself at import time. A plugin that fails to load is left out (and said in the log); two
plugins providing one interface are refused. `Installed` answers the linker (which interface and
version), workload starts (is each hostInterfaces entry's config acceptable) and heartbeats (what
is installed), and runs the plugins' host and workload lifecycle in the process running guests.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.metadata
import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field

from wasmfleet.host.plugin_api.host_plugins import (
    ENTRY_POINT_GROUP,
    HostContext,
    HostPlugin,
    PluginError,
    WorkloadContext,
)
from wasmfleet.host.plugin_api.interfaces import Interface
from wasmfleet.host.runtime.specs import ComponentSpec, Grant

log = logging.getLogger(__name__)


@dataclass
class Installed:
    """Every loaded plugin, by interface and by package."""

    plugins: list[HostPlugin] = field(default_factory=list)
    interfaces: dict[str, Interface] = field(default_factory=dict)
    """"ns:pkg/iface" -> the interface, its `version` filled from its plugin."""
    by_package: dict[str, HostPlugin] = field(default_factory=dict)
    """"ns:pkg" -> the plugin providing it."""

    def add(self, plugin: HostPlugin) -> None:
        """Adds a plugin; PluginError when it clashes with one already here (nothing is added)."""
        provided = plugin.interfaces()
        for iface in provided:
            if iface.name in self.interfaces:
                owner = self.by_package[iface.name.partition("/")[0]]
                raise PluginError(f"plugin {plugin.name}: {iface.name} is already provided by plugin {owner.name}")
        for package in plugin.packages():
            holder = self.by_package.get(package)
            if holder is not None:
                raise PluginError(f"plugin {plugin.name}: package {package} is already provided "
                                  f"by plugin {holder.name}")
        self.plugins.append(plugin)
        for iface in provided:
            self.interfaces[iface.name] = dataclasses.replace(iface, version=iface.version or plugin.version)
        for package in plugin.packages():
            self.by_package[package] = plugin

    def entry_problems(self, grants: Iterable[Grant]) -> list[str]:
        """One line per problem with the workload's hostInterfaces entries, each naming the entry
        (package, and name when given) and the key or interface at fault."""
        problems = []
        for grant in grants:
            package = f"{grant.namespace}:{grant.package}"
            label = f"hostInterfaces entry {package}" + (f" (name {grant.name})" if grant.name else "")
            plugin = self.by_package.get(package)
            if plugin is None:
                problems.append(f"{label}: no plugin on this host provides {package}")
                continue
            offered = {i.name.partition("/")[2] for i in plugin.interfaces() if i.name.startswith(package + "/")}
            offered |= {e.partition("/")[2] for e in plugin.exports if e.startswith(package + "/")}
            for iface in grant.interfaces:
                if iface not in offered:
                    problems.append(f"{label}: interface {iface} is not provided "
                                    f"({plugin.name} provides {', '.join(sorted(offered))})")
            problems += [f"{label}: {p}" for p in plugin.config_problems(grant.config)]
        return problems


def load(names: Iterable[importlib.metadata.EntryPoint] | None = None) -> Installed:
    """Loads every plugin of the entry-point group (or of `names`), skipping those that fail."""
    installed = Installed()
    entry_points = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP) if names is None else names
    seen: set[str] = set()
    for ep in sorted(entry_points, key=lambda e: e.name):
        if ep.name in seen:  # the same distribution visible twice on sys.path
            continue
        seen.add(ep.name)
        try:
            factory = ep.load()
            plugin = factory()
            if not isinstance(plugin, HostPlugin):
                raise PluginError(f"plugin {ep.name}: {ep.value} did not return a HostPlugin")
            plugin.name = plugin.name or ep.name
            installed.add(plugin)
        except Exception as exc:
            log.error("host plugin %s (%s) not loaded: %s", ep.name, ep.value, exc)
    if not any(name.startswith("wasi:io/") for name in installed.interfaces):
        log.error("no plugin provides wasi:io: wasmfleet's entry points (group %s) are not installed; "
                  "reinstall the package (pip install -e .)", ENTRY_POINT_GROUP)
    return installed


@functools.cache
def installed() -> Installed:
    """The plugins of this process, loaded on first use."""
    return load()


_process_lifecycle: Lifecycle | None = None
_process_lock = threading.Lock()


def process_lifecycle(host: HostContext) -> Lifecycle:
    """The lifecycle of this process's plugins (one per process: plugins share per process)."""
    global _process_lifecycle
    with _process_lock:
        if _process_lifecycle is None:
            _process_lifecycle = Lifecycle(installed(), host)
        return _process_lifecycle


def stop_process_lifecycle() -> None:
    """The process's data plane stopped: plugins close what they share (a later start reopens)."""
    global _process_lifecycle
    with _process_lock:
        lifecycle, _process_lifecycle = _process_lifecycle, None
    if lifecycle is not None:
        lifecycle.stop()


class Lifecycle:
    """Runs the plugins' start/stop hooks in the process that runs guests.

    A workload is started for a plugin when its first component granted one of the plugin's
    packages is loaded, and stopped when the last such component is closed (a re-route loads the
    new component before closing the old one, so per-workload state survives it). A plugin's host
    start runs before its first workload; its host stop when the data plane stops.
    """

    def __init__(self, plugins: Installed, host: HostContext) -> None:
        self._plugins = plugins
        self._host = host
        self._lock = threading.Lock()
        self._hosts_started: set[str] = set()
        self._loaded: dict[tuple[str, str], int] = {}  # (plugin, workload) -> loaded components

    def _granted_plugins(self, spec: ComponentSpec) -> list[tuple[HostPlugin, list[Grant]]]:
        found: dict[str, tuple[HostPlugin, list[Grant]]] = {}
        for grant in spec.grants:
            plugin = self._plugins.by_package.get(f"{grant.namespace}:{grant.package}")
            if plugin is not None:
                found.setdefault(plugin.name, (plugin, []))[1].append(grant)
        return list(found.values())

    def component_loaded(self, spec: ComponentSpec) -> None:
        with self._lock:
            for plugin, grants in self._granted_plugins(spec):
                if plugin.name not in self._hosts_started:
                    plugin.start_host(self._host)
                    self._hosts_started.add(plugin.name)
                key = (plugin.name, spec.workload_id)
                if self._loaded.get(key, 0) == 0:
                    plugin.start_workload(WorkloadContext(
                        workload_id=spec.workload_id,
                        component=spec.name,
                        entries=tuple(dict(g.config) for g in grants),
                        names=tuple(g.name for g in grants),
                        config=dict(spec.config),
                        environment=dict(spec.environment),
                    ))
                self._loaded[key] = self._loaded.get(key, 0) + 1

    def component_closed(self, spec: ComponentSpec) -> None:
        with self._lock:
            for plugin, _ in self._granted_plugins(spec):
                key = (plugin.name, spec.workload_id)
                left = self._loaded.get(key, 0) - 1
                if left > 0:
                    self._loaded[key] = left
                    continue
                self._loaded.pop(key, None)
                try:
                    plugin.stop_workload(spec.workload_id)
                except Exception:
                    log.exception("plugin %s: stopping workload %s failed", plugin.name, spec.workload_id)

    def stop(self) -> None:
        """The data plane stops: every plugin started here closes what it shares."""
        with self._lock:
            for plugin in self._plugins.plugins:
                if plugin.name in self._hosts_started:
                    try:
                        plugin.stop_host()
                    except Exception:
                        log.exception("plugin %s: host stop failed", plugin.name)
            self._hosts_started.clear()
            self._loaded.clear()
