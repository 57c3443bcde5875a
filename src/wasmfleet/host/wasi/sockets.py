"""wasi:sockets: known to the linker but never served.

Every wasi:sockets interface is denied: a component importing it instantiates, and any call traps
with "not granted". Raw sockets are out of scope for HTTP workloads on this host.
"""

from __future__ import annotations

from wasmfleet.host.plugin_api.interfaces import Interface

NAMES = (
    "network", "instance-network", "udp", "udp-create-socket", "tcp", "tcp-create-socket",
    "ip-name-lookup",
)

INTERFACES = {f"wasi:sockets/{n}": Interface(f"wasi:sockets/{n}", {}) for n in NAMES}
"""No functions: the linker fills every function of these interfaces with a denying stub."""
