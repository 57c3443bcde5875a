"""The table of WASI interfaces this host implements in Python."""

from __future__ import annotations

import functools

from wasmfleet.host.plugin_api.interfaces import Interface
from wasmfleet.host.wasi import cli, clocks, filesystem, http, io, random, sockets


@functools.cache
def all_interfaces() -> dict[str, Interface]:
    """Every WASI interface this host can link, keyed by "namespace:package/interface" (no version)."""
    found: dict[str, Interface] = {}
    for module in (io, clocks, random, cli, filesystem, sockets, http):
        found.update(module.INTERFACES)
    return found
