"""EndpointSlice address rules (`api.endpoint_addresses`) and the gateway's use of them.

Checks:
- IPv4/IPv6 addresses Kubernetes refuses (unspecified, loopback, link-local unicast, link-local
  multicast, wrong family, IPv4-mapped IPv6, malformed) get Kubernetes' reasons; ordinary, private and
  other multicast addresses pass;
- FQDN addresses must be RFC 1123 subdomains of at least two labels (one trailing dot ignored);
- an unknown addressType is not checked; address types are derived from the address;
- the gateway's desired slices leave out hosts with refused addresses, report them, and still write a
  slice for the Service's other hosts; no slice when no host is usable.
"""

from __future__ import annotations

import pytest

from wasmfleet.api import endpoint_addresses
from wasmfleet.gateway import endpointslices, routes


@pytest.mark.parametrize(
    ("address", "kind", "reason"),
    [
        ("127.0.0.1", "IPv4", "may not be in the loopback range (127.0.0.0/8, ::1/128)"),
        ("127.10.0.3", "IPv4", "may not be in the loopback range (127.0.0.0/8, ::1/128)"),
        ("0.0.0.0", "IPv4", "may not be unspecified (0.0.0.0)"),
        ("169.254.169.254", "IPv4", "may not be in the link-local range (169.254.0.0/16, fe80::/10)"),
        ("224.0.0.251", "IPv4", "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)"),
        ("::1", "IPv6", "may not be in the loopback range (127.0.0.0/8, ::1/128)"),
        ("::", "IPv6", "may not be unspecified (::)"),
        ("fe80::1", "IPv6", "may not be in the link-local range (169.254.0.0/16, fe80::/10)"),
        ("ff02::fb", "IPv6", "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)"),
        ("::ffff:10.0.0.1", "IPv6", "must be a valid IPv6 address"),
        ("10.0.0.1", "IPv6", "must be a valid IPv6 address"),
        ("fd00::1", "IPv4", "must be a valid IPv4 address"),
        ("10.0.0", "IPv4", "must be a valid IPv4 address"),
        ("localhost", "FQDN", "should be a domain with at least two segments separated by dots"),
        ("Host.Example", "FQDN", "a lowercase RFC 1123 subdomain must consist of"),
        ("bad_name.example", "FQDN", "a lowercase RFC 1123 subdomain must consist of"),
        ("a" * 250 + ".com", "FQDN", "must be no more than 253 characters"),
    ],
)
def test_refused_addresses_get_kubernetes_reasons(address: str, kind: str, reason: str) -> None:
    got = endpoint_addresses.problems(address, kind)
    assert any(p.startswith(reason) for p in got), got


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("10.0.0.7", "IPv4"),
        ("192.168.1.20", "IPv4"),
        ("239.1.2.3", "IPv4"),  # multicast outside the link-local block: Kubernetes accepts it
        ("8.8.8.8", "IPv4"),
        ("fd00::7", "IPv6"),
        ("2001:db8::1", "IPv6"),
        ("host-a.hosts.example", "FQDN"),
        ("host-a.hosts.example.", "FQDN"),
        ("whatever", "SomethingElse"),
    ],
)
def test_usable_addresses_pass(address: str, kind: str) -> None:
    assert endpoint_addresses.problems(address, kind) == []


def test_address_type_follows_the_address() -> None:
    assert endpoint_addresses.address_type("10.0.0.1") == "IPv4"
    assert endpoint_addresses.address_type("::1") == "IPv6"
    assert endpoint_addresses.address_type("[fd00::1]") == "IPv6"
    assert endpoint_addresses.address_type("host-a.local") == "FQDN"


def test_desired_slices_leave_out_refused_hosts_and_report_them() -> None:
    svc = routes.ServiceKey("apps", "api")
    good = routes.Backend("10.0.0.7", 9001, "H1", "h1")
    loop = routes.Backend("127.0.0.1", 9001, "H2", "h2")
    short = routes.Backend("laptop", 9001, "H3", "h3")
    slices, refused = endpointslices.desired_slices({svc: (good, loop, short)})
    assert list(slices) == [("apps", "api-wasmfleet-ipv4-9001")]
    body = slices[("apps", "api-wasmfleet-ipv4-9001")]
    assert [e["addresses"] for e in body["endpoints"]] == [["10.0.0.7"]]
    assert {(r.backend.host_name, r.service) for r in refused} == {("h2", svc), ("h3", svc)}
    assert all(r.reasons for r in refused)

    only_bad, refused = endpointslices.desired_slices({svc: (loop,)})
    assert only_bad == {}
    assert [r.backend for r in refused] == [loop]
