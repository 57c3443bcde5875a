"""wasi:sockets policy decisions (wasmfleet.host.wasi.socket_policy), as pure functions.

Checks: deny by default; "*" allows every address; address patterns match the written-out
address; an address resolved from a name allowedHosts matches becomes reachable (and one from a
name only allowedIpNameLookups matches does not); lookups follow allowedIpNameLookups or
allowedHosts; allowedHostLoopbackPorts accepts "P", "P/tcp", "P/udp" per protocol.
"""

from __future__ import annotations

import ipaddress

from wasmfleet.host.wasi.socket_policy import NetworkAccess, SocketPolicy

IP = ipaddress.ip_address


def test_addresses_are_denied_unless_allowed_hosts_says_so() -> None:
    assert not SocketPolicy((), NetworkAccess()).may_reach(IP("10.0.0.5"))
    assert SocketPolicy(("*",), NetworkAccess()).may_reach(IP("2001:db8::1"))
    by_pattern = SocketPolicy(("10.0.0.*", "2001:db8::1"), NetworkAccess())
    assert by_pattern.may_reach(IP("10.0.0.5"))
    assert by_pattern.may_reach(IP("2001:db8::1"))
    assert not by_pattern.may_reach(IP("10.0.1.5"))


def test_addresses_of_allowed_names_become_reachable() -> None:
    policy = SocketPolicy(("db.example.com",), NetworkAccess(allowed_ip_name_lookups=("cdn.example.com",)))
    policy.remember("cdn.example.com", [IP("192.0.2.10")])
    policy.remember("DB.example.com", [IP("192.0.2.20")])
    assert not policy.may_reach(IP("192.0.2.10"))  # looked up, but not an allowed host
    assert policy.may_reach(IP("192.0.2.20"))


def test_lookups_follow_allowed_ip_name_lookups_or_allowed_hosts() -> None:
    policy = SocketPolicy(("api.example.com",), NetworkAccess(allowed_ip_name_lookups=("*.svc.local",)))
    assert policy.may_lookup("api.example.com")
    assert policy.may_lookup("cache.svc.local")
    assert not policy.may_lookup("example.org")
    assert SocketPolicy(("*",), NetworkAccess()).may_lookup("anything.example")


def test_host_loopback_ports_by_protocol() -> None:
    policy = SocketPolicy((), NetworkAccess(allowed_host_loopback_ports=("5432", "53/udp", "8080/TCP")))
    assert policy.host_loopback_allowed(5432, "tcp") and policy.host_loopback_allowed(5432, "udp")
    assert policy.host_loopback_allowed(53, "udp") and not policy.host_loopback_allowed(53, "tcp")
    assert policy.host_loopback_allowed(8080, "tcp") and not policy.host_loopback_allowed(8080, "udp")
    assert not policy.host_loopback_allowed(9999, "tcp")
