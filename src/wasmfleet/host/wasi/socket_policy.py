"""Who a component may reach with wasi:sockets, from its LocalResources (deny by default).

- Loopback addresses (127.0.0.0/8, ::1) always mean the workload's private loopback
  (`private_loopback`). When nothing listens there on a port and the port is listed in
  allowedHostLoopbackPorts ("PORT", "PORT/tcp" or "PORT/udp"), the connection or datagram goes to
  the host's real loopback instead.
- Any other address needs allowedHosts: "*" allows every address; otherwise a pattern (fnmatch,
  case-insensitive) must match the address written out ("10.0.0.5", "10.0.0.*", "2001:db8::1"),
  or the address must have come from a lookup, in the same store, of a name allowedHosts matches
  (so `allowedHosts: [example.com]` lets a guest resolve example.com and connect to its addresses,
  and no other).
- ip-name-lookup: "localhost" (and IP literals) always resolve. Another name resolves when it
  matches allowedIpNameLookups *or* allowedHosts. Why both: a component allowed to connect to a
  host by name must be able to resolve it (upstream manifests list only allowedHosts for that),
  while allowedIpNameLookups lets a component resolve names it will not connect to itself. A
  denied lookup fails with `access-denied`, as a denied connect does.
"""

from __future__ import annotations

import fnmatch
import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class NetworkAccess:
    """wasi:sockets for one component: its workload's private loopback and what may leave it.

    Plain data (it crosses into worker processes inside the ComponentSpec)."""

    loopback_dir: Path | None = None
    """The workload's private loopback directory (see `private_loopback`); None: a directory
    this process makes for the workload id (for specs built by hand, e.g. `wasmfleet serve`)."""
    allowed_ip_name_lookups: tuple[str, ...] = ()
    allowed_host_loopback_ports: tuple[str, ...] = ()
    """Each "PORT", "PORT/tcp" or "PORT/udp" (upstream's strings)."""


def is_loopback(ip: IpAddress) -> bool:
    return ip.is_loopback


def _matches(text: str, patterns: tuple[str, ...]) -> bool:
    text = text.lower()
    return any(p == "*" or fnmatch.fnmatch(text, p.lower()) for p in patterns)


@dataclass
class SocketPolicy:
    """The decisions for one store (the addresses resolved from allowed names are remembered)."""

    allowed_hosts: tuple[str, ...]
    access: NetworkAccess
    resolved: set[IpAddress] = field(default_factory=set)

    def may_reach(self, ip: IpAddress) -> bool:
        """May a connection or datagram go to this non-loopback address?"""
        return _matches(str(ip), self.allowed_hosts) or ip in self.resolved

    def may_lookup(self, name: str) -> bool:
        return _matches(name, self.access.allowed_ip_name_lookups) or _matches(name, self.allowed_hosts)

    def remember(self, name: str, addresses: list[IpAddress]) -> None:
        """Addresses found for `name`: reachable afterwards when allowedHosts names it."""
        if _matches(name, self.allowed_hosts):
            self.resolved.update(addresses)

    def host_loopback_allowed(self, port: int, protocol: str) -> bool:
        """May a loopback connection to `port` fall through to the host's real loopback?"""
        for entry in self.access.allowed_host_loopback_ports:
            number, _, proto = entry.strip().partition("/")
            if number.strip() == str(port) and (not proto or proto.strip().lower() == protocol):
                return True
        return False
