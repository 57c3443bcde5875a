"""What the wasi:sockets resources share: WIT addresses, error codes, fd readiness, the store's session.

WIT shapes (see runtime.codec): ip-socket-address is ("ipv4", (port, (a, b, c, d))) or
("ipv6", (port, flow-info, (eight u16), scope-id)); ip-address is ("ipv4", (a, b, c, d)) or
("ipv6", (eight u16)); error-code is its case name.
"""

from __future__ import annotations

import errno
import ipaddress
import select
import socket
from dataclasses import dataclass
from typing import Any

from wasmfleet.host.plugin_api import store_state
from wasmfleet.host.wasi import private_loopback
from wasmfleet.host.wasi.socket_policy import IpAddress, NetworkAccess, SocketPolicy

IPV4, IPV6 = "ipv4", "ipv6"


class SocketError(Exception):
    """Fails a wasi:sockets call with an `error-code` (returned as the result's err, never a trap)."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


_ERRNO = {
    errno.ECONNREFUSED: "connection-refused", errno.ENOENT: "connection-refused",
    errno.ECONNRESET: "connection-reset", errno.EPIPE: "connection-reset",
    errno.ECONNABORTED: "connection-aborted", errno.EADDRINUSE: "address-in-use",
    errno.EADDRNOTAVAIL: "address-not-bindable", errno.ENETUNREACH: "remote-unreachable",
    errno.EHOSTUNREACH: "remote-unreachable", errno.ENETDOWN: "remote-unreachable",
    errno.ETIMEDOUT: "timeout", errno.EACCES: "access-denied", errno.EPERM: "access-denied",
    errno.EAGAIN: "would-block", errno.EMSGSIZE: "datagram-too-large", errno.ENOMEM: "out-of-memory",
    errno.ENOBUFS: "out-of-memory", errno.EMFILE: "new-socket-limit", errno.ENFILE: "new-socket-limit",
    errno.EINVAL: "invalid-argument", errno.EAFNOSUPPORT: "not-supported",
}


def error_code(exc: OSError) -> str:
    return _ERRNO.get(exc.errno or 0, "unknown")


@dataclass(frozen=True)
class SockAddr:
    """An IP socket address as the host handles it."""

    ip: IpAddress
    port: int
    flow_info: int = 0
    scope_id: int = 0

    @property
    def family(self) -> str:
        return IPV4 if self.ip.version == 4 else IPV6

    def to_wit(self) -> tuple[str, Any]:
        if isinstance(self.ip, ipaddress.IPv4Address):
            return (IPV4, (self.port, tuple(self.ip.packed)))
        words = tuple(int.from_bytes(self.ip.packed[i:i + 2], "big") for i in range(0, 16, 2))
        return (IPV6, (self.port, self.flow_info, words, self.scope_id))

    @classmethod
    def from_wit(cls, value: tuple[str, Any]) -> SockAddr:
        tag, payload = value
        if tag == IPV4:
            port, octets = payload
            return cls(ipaddress.IPv4Address(bytes(octets)), port)
        port, flow, words, scope = payload
        return cls(ipaddress.IPv6Address(b"".join(w.to_bytes(2, "big") for w in words)), port, flow, scope)

    def os_address(self) -> tuple[Any, ...]:
        if self.family == IPV4:
            return (str(self.ip), self.port)
        return (str(self.ip), self.port, self.flow_info, self.scope_id)

    @classmethod
    def from_os(cls, address: tuple[Any, ...]) -> SockAddr:
        ip = ipaddress.ip_address(address[0].split("%", 1)[0])
        if len(address) >= 4:
            return cls(ip, address[1], address[2], address[3])
        return cls(ip, address[1])


def ip_to_wit(ip: IpAddress) -> tuple[str, Any]:
    if isinstance(ip, ipaddress.IPv4Address):
        return (IPV4, tuple(ip.packed))
    return (IPV6, tuple(int.from_bytes(ip.packed[i:i + 2], "big") for i in range(0, 16, 2)))


def loopback_ip(family: str) -> IpAddress:
    return ipaddress.IPv4Address("127.0.0.1") if family == IPV4 else ipaddress.IPv6Address("::1")


def os_family(family: str) -> socket.AddressFamily:
    return socket.AF_INET if family == IPV4 else socket.AF_INET6


def check_family(family: str, addr: SockAddr) -> None:
    """A socket of one family takes addresses of that family only (IPv4-mapped IPv6 addresses
    are refused, as wasi:sockets specifies)."""
    if addr.family != family:
        raise SocketError("invalid-argument")
    if isinstance(addr.ip, ipaddress.IPv6Address) and addr.ip.ipv4_mapped is not None:
        raise SocketError("invalid-argument")


def check_remote(family: str, addr: SockAddr) -> None:
    check_family(family, addr)
    if addr.ip.is_unspecified or addr.port == 0:
        raise SocketError("invalid-argument")


def check_bindable(family: str, addr: SockAddr) -> None:
    """Binds land on the private loopback: only the unspecified and loopback addresses exist."""
    check_family(family, addr)
    if not (addr.ip.is_unspecified or addr.ip.is_loopback):
        raise SocketError("address-not-bindable")


def fd_ready(fd: int, events: int) -> bool:
    """True when `fd` is ready for `events` now (or in an error/hang-up state, which the next
    operation reports)."""
    poller = select.poll()
    poller.register(fd, events)
    return bool(poller.poll(0))


class Session:
    """The wasi:sockets state of one store: its policy and its workload's private loopback."""

    def __init__(self, workload_id: str, allowed_hosts: tuple[str, ...], access: NetworkAccess | None) -> None:
        access = access or NetworkAccess()
        self.policy = SocketPolicy(allowed_hosts, access)
        directory = access.loopback_dir or private_loopback.fallback_directory(workload_id)
        self.loopback = private_loopback.PrivateLoopback(directory)


def session() -> Session:
    ctx = store_state.state()
    found: Session | None = ctx.sockets
    if found is None:
        found = ctx.sockets = Session(ctx.workload_id, ctx.allowed_hosts, ctx.network)
    return found


def wait_until(fd: int, events: int) -> None:
    """Blocks the guest (bounded by the store's deadline) until `fd` is ready for `events`."""
    ctx = store_state.state()
    while not fd_ready(fd, events):
        ctx.wait_fds([(fd, events)], 0.25)
