"""What this runtime can link, for host heartbeats (`HostHeartbeat.imports/exports`).

Every WASI 0.2 interface implemented in `wasmfleet.host.wasi` except wasi:sockets (never served),
grouped by package; the version is the newest 0.2 patch tested (any 0.2.x import links).
"""

from __future__ import annotations

from wasmfleet.host.runtime.specs import Grant
from wasmfleet.host.wasi import wasi_table

WASI_VERSION = "0.2.12"


def provided_interfaces() -> list[Grant]:
    """Packages and interfaces a component may import here (plus the incoming-handler export)."""
    by_package: dict[tuple[str, str], list[str]] = {}
    for name in wasi_table.all_interfaces():
        ns, _, rest = name.partition(":")
        package, _, interface = rest.partition("/")
        if (ns, package) == ("wasi", "sockets"):
            continue
        by_package.setdefault((ns, package), []).append(interface)
    by_package[("wasi", "http")].append("incoming-handler")
    return [
        Grant(namespace=ns, package=package, interfaces=tuple(sorted(ifaces)), version=WASI_VERSION)
        for (ns, package), ifaces in sorted(by_package.items())
    ]
