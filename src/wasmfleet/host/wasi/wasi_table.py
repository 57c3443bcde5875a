"""The table of WASI interfaces this host implements in Python, and the plugin that provides them.

`WasiPlugin` is declared in pyproject.toml under the entry-point group `wasmfleet.host_interfaces`
like any other plugin; nothing here runs at import time.
"""

from __future__ import annotations

import functools

from wasmfleet.host.plugin_api.host_plugins import HostPlugin
from wasmfleet.host.plugin_api.interfaces import Interface
from wasmfleet.host.wasi import cli, clocks, filesystem, http, io, random, sockets

WASI_VERSION = "0.2.12"
"""The newest WASI 0.2 patch tested; any 0.2.x import links."""


@functools.cache
def all_interfaces() -> dict[str, Interface]:
    """Every WASI interface this host can link, keyed by "namespace:package/interface" (no version)."""
    found: dict[str, Interface] = {}
    for module in (io, clocks, random, cli, filesystem, sockets, http):
        found.update(module.INTERFACES)
    return found


class WasiPlugin(HostPlugin):
    """WASI 0.2: io, clocks, random, cli, filesystem, sockets, http."""

    name = "wasi"
    version = WASI_VERSION
    open_config = True
    """wasi:http entries carry routing keys (host, aliases) the host reads, not this plugin."""
    exports = ("wasi:http/incoming-handler",)

    def interfaces(self) -> tuple[Interface, ...]:
        return tuple(all_interfaces().values())
