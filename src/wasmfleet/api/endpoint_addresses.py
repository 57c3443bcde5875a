"""Which addresses a discovery.k8s.io/v1 EndpointSlice may hold: Kubernetes' own validation rules.

kube-apiserver refuses an EndpointSlice whose ``endpoints[].addresses[]`` break these (its
``validateEndpoints``, ``ValidateEndpointIP`` and ``IsFullyQualifiedDomainName``). The embedded API
server applies them so it refuses what a real cluster refuses, and the gateway asks before writing a
slice, so one host with an unusable address leaves that host out instead of failing the whole slice.

By the slice's ``addressType``:
- ``IPv4``: a dotted-quad IPv4 address; ``IPv6``: an IPv6 address that is not IPv4-mapped;
  either way not unspecified (0.0.0.0, ::), not loopback (127.0.0.0/8, ::1), not link-local unicast
  (169.254.0.0/16, fe80::/10) and not link-local multicast (224.0.0.0/24, ff02::/16 and the other
  ffX2:: link-scope groups). Other multicast and private ranges are accepted, as Kubernetes does.
- ``FQDN``: an RFC 1123 subdomain of at least two labels, at most 253 characters (one trailing dot
  is ignored).
- another type: not checked (Kubernetes does not either).
Messages are Kubernetes' own wording, so a user sees the same reason from either server.
"""

from __future__ import annotations

import ipaddress
import re

MAX_ADDRESSES = 100
"""Addresses per endpoint (Kubernetes' maxAddresses)."""

_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_SUBDOMAIN_MESSAGE = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
    "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for "
    "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)


def problems(address: str, address_type: str) -> list[str]:
    """Why Kubernetes would refuse ``address`` in a slice of ``address_type`` (empty: it is fine)."""
    if address_type == "IPv4":
        try:
            return _special(ipaddress.IPv4Address(address), address)
        except ValueError:
            return ["must be a valid IPv4 address"]
    if address_type == "IPv6":
        try:
            ip6 = ipaddress.IPv6Address(address)
        except ValueError:
            return ["must be a valid IPv6 address"]
        if ip6.ipv4_mapped is not None:
            return ["must be a valid IPv6 address"]
        return _special(ip6, address)
    if address_type == "FQDN":
        return _fqdn(address)
    return []


def _special(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, address: str) -> list[str]:
    out = []
    if ip.is_unspecified:
        out.append(f"may not be unspecified ({address})")
    if ip.is_loopback:
        out.append("may not be in the loopback range (127.0.0.0/8, ::1/128)")
    if ip.is_link_local:  # IPv4 169.254.0.0/16, IPv6 fe80::/10: link-local unicast
        out.append("may not be in the link-local range (169.254.0.0/16, fe80::/10)")
    if _link_local_multicast(ip):
        out.append("may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)")
    return out


def _link_local_multicast(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    packed = ip.packed
    if ip.version == 4:
        return packed[:3] == b"\xe0\x00\x00"
    return packed[0] == 0xFF and packed[1] & 0x0F == 0x02  # link-local scope, any flags


def _fqdn(name: str) -> list[str]:
    if name.endswith("."):
        name = name[:-1]
    if not name:
        return ["Required value"]
    out = []
    if len(name) > 253:
        out.append("must be no more than 253 characters")
    if not _DNS1123_SUBDOMAIN.match(name):
        out.append(_SUBDOMAIN_MESSAGE)
    if len(name.split(".")) < 2:
        out.append("should be a domain with at least two segments separated by dots")
    return out


def address_type(address: str) -> str:
    """The addressType an address belongs in: IPv4, IPv6 (brackets allowed) or FQDN."""
    try:
        ip = ipaddress.ip_address(address.strip("[]"))
    except ValueError:
        return "FQDN"
    return "IPv4" if ip.version == 4 else "IPv6"
