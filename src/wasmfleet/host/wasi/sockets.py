"""wasi:sockets 0.2: network, instance-network, tcp, tcp-create-socket, udp, udp-create-socket,
ip-name-lookup, served to every component (like the rest of the WASI core) under a policy.

Each workload has a private loopback (`private_loopback`): binds to 0.0.0.0, ::, 127.0.0.1 or ::1
land there, shared by the workload's components and service and unreachable from other
workloads. What may leave it follows the component's LocalResources (`socket_policy`):
allowedHosts for other addresses (deny by default, `access-denied`), allowedHostLoopbackPorts
for the host's real loopback, allowedIpNameLookups (or allowedHosts) for name lookups.
The resources live in `tcp_sockets` and `udp_sockets`; name lookups run on a thread so a slow
resolver never holds the wasm thread (the guest polls `resolve-address-stream.subscribe`).
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from typing import Any

from wasmfleet.host.plugin_api import store_state
from wasmfleet.host.plugin_api.interfaces import Interface, err, ok
from wasmfleet.host.wasi import io, tcp_sockets, udp_sockets
from wasmfleet.host.wasi.io import IoError
from wasmfleet.host.wasi.socket_core import ip_to_wit, session
from wasmfleet.host.wasi.socket_policy import IpAddress

LOCALHOST = ("localhost", "localhost.")
_GAI_ERRORS = {
    socket.EAI_NONAME: "name-unresolvable", socket.EAI_AGAIN: "temporary-resolver-failure",
    socket.EAI_FAIL: "permanent-resolver-failure",
}


class Network:
    """The network resource: a capability token (what it may reach is the store's policy)."""


class ResolveStream:
    """resolve-address-stream: the addresses of one lookup, produced by a resolver thread."""

    def __init__(self, addresses: list[IpAddress] | None = None) -> None:
        self.addresses: list[IpAddress] = addresses or []
        self.error: str | None = None
        self.done = threading.Event()
        if addresses is not None:
            self.done.set()

    def start(self, name: str) -> None:
        ctx = store_state.state()
        policy = session().policy
        cond = ctx.cond

        def resolve() -> None:
            try:
                infos = socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
                seen: list[IpAddress] = []
                for _family, _type, _proto, _canon, address in infos:
                    ip = ipaddress.ip_address(str(address[0]).split("%", 1)[0])
                    if ip not in seen:
                        seen.append(ip)
                self.addresses = seen
                policy.remember(name, seen)
            except socket.gaierror as exc:
                self.error = _GAI_ERRORS.get(exc.errno or 0, "permanent-resolver-failure")
            except (OSError, UnicodeError):
                self.error = "permanent-resolver-failure"
            self.done.set()
            with cond:
                cond.notify_all()

        threading.Thread(target=resolve, name="wasi-resolve", daemon=True).start()

    def resolve_next_address(self) -> tuple[str, Any]:
        if not self.done.is_set():
            return err("would-block")
        if self.error is not None:
            return err(self.error)
        if not self.addresses:
            return ok(None)
        return ok(ip_to_wit(self.addresses.pop(0)))

    def subscribe(self) -> io.Pollable:
        return io.CallbackPollable(self.done.is_set)


def _valid_name(name: str) -> bool:
    if not name or len(name) > 253 or any(c.isspace() or c in "/:@[]" for c in name):
        return False
    return all(0 < len(label) <= 63 for label in name.rstrip(".").split("."))


def _resolve_addresses(_network: Network, name: str) -> tuple[str, Any]:
    try:
        literal = ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        literal = None
    if literal is not None:
        return ok(ResolveStream([literal]))
    lowered = name.lower()
    if lowered in LOCALHOST:
        return ok(ResolveStream([ipaddress.IPv4Address("127.0.0.1"), ipaddress.IPv6Address("::1")]))
    if not _valid_name(name):
        return err("invalid-argument")
    if not session().policy.may_lookup(lowered.rstrip(".")):
        return err("access-denied")
    stream = ResolveStream()
    stream.start(name)
    return ok(stream)


def _network_error_code(error: IoError) -> str | None:
    code: str | None = getattr(error, "code", None)
    return code


INTERFACES = {
    "wasi:sockets/network": Interface(
        "wasi:sockets/network", {"network-error-code": _network_error_code}, ("network",)
    ),
    "wasi:sockets/instance-network": Interface(
        "wasi:sockets/instance-network", {"instance-network": Network}
    ),
    "wasi:sockets/tcp-create-socket": Interface(
        "wasi:sockets/tcp-create-socket", {"create-tcp-socket": tcp_sockets.create}
    ),
    "wasi:sockets/tcp": Interface("wasi:sockets/tcp", tcp_sockets.FUNCTIONS, ("tcp-socket",), blocking=True),
    "wasi:sockets/udp-create-socket": Interface(
        "wasi:sockets/udp-create-socket", {"create-udp-socket": udp_sockets.create}
    ),
    "wasi:sockets/udp": Interface(
        "wasi:sockets/udp", udp_sockets.FUNCTIONS,
        ("udp-socket", "incoming-datagram-stream", "outgoing-datagram-stream"), blocking=True,
    ),
    "wasi:sockets/ip-name-lookup": Interface(
        "wasi:sockets/ip-name-lookup",
        {
            "resolve-addresses": _resolve_addresses,
            "[method]resolve-address-stream.resolve-next-address": ResolveStream.resolve_next_address,
            "[method]resolve-address-stream.subscribe": ResolveStream.subscribe,
        },
        ("resolve-address-stream",), blocking=True,
    ),
}
