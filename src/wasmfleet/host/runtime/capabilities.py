"""What this host can link, for heartbeats (`HostHeartbeat.imports/exports`): the installed plugins.

Grouped by package, at each plugin's version (wasi:sockets included: it is served, under each
workload's network policy).
"""

from __future__ import annotations

from wasmfleet.host.runtime import plugin_registry
from wasmfleet.host.runtime.specs import Grant


def provided_interfaces() -> list[Grant]:
    """Packages and interfaces a component may import here (plus the exports the host calls)."""
    by_package: dict[tuple[str, str, str], list[str]] = {}
    installed = plugin_registry.installed()
    names = [(i.name, i.version) for i in installed.interfaces.values()]
    for plugin in installed.plugins:
        names += [(e, plugin.version) for e in plugin.exports]
    for name, version in names:
        ns, _, rest = name.partition(":")
        package, _, interface = rest.partition("/")
        by_package.setdefault((ns, package, version), []).append(interface)
    return [
        Grant(namespace=ns, package=package, interfaces=tuple(sorted(ifaces)), version=version)
        for (ns, package, version), ifaces in sorted(by_package.items())
    ]
