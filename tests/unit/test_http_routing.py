"""The HTTP routing contract shared by the gateway, the host and the operator (`bus.http_routing`).

Checks:
- Host names are normalised: case, port, surrounding space, trailing dot(s), IPv6 literals with or
  without brackets (compressed form), the catch-all ``*``; malformed values never raise;
- a workload's route names: ``host`` of the wasi:http incoming-handler config as a comma list, then
  ``host-aliases``, then ``<svc>.<ns>``, ``<svc>.<ns>.svc``, ``<svc>.<ns>.svc.cluster.local`` when a
  Service is named; normalised, ordered, without duplicates; other interfaces' ``host`` is ignored;
- the operator's injection puts the Service names into ``host-aliases`` of the HTTP handler entry only,
  keeping names already there, and the host then derives exactly the gateway's names from the start
  request;
- the gateway's routing table and the host's translation both use the contract (same names for the
  same workload, including every non-canonical spelling of a Host header);
- the no-route header name is one string, used by the gateway and (lower-cased) by the host.
"""

from __future__ import annotations

import pytest

from wasmfleet.bus import http_routing, messages
from wasmfleet.gateway import proxying, routes
from wasmfleet.host import translation
from wasmfleet.host.runtime import http1


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Hello.LocalHost", "hello.localhost"),
        ("hello.localhost:8000", "hello.localhost"),
        ("hello.localhost.", "hello.localhost"),
        ("HELLO.LOCALHOST.:80", "hello.localhost"),
        ("hello.localhost:", "hello.localhost"),
        ("  a.b  ", "a.b"),
        ("[::1]:8000", "[::1]"),
        ("[::1]", "[::1]"),
        ("::1", "[::1]"),
        ("[0:0:0:0:0:0:0:1]", "[::1]"),
        ("[FE80::A]:9", "[fe80::a]"),
        ("10.0.0.7:8080", "10.0.0.7"),
        ("*", "*"),
    ],
)
def test_names_are_normalised(raw: str, expected: str) -> None:
    assert http_routing.normalize_hostname(raw) == expected


@pytest.mark.parametrize("raw", ["", "[", "[::1", "[not-an-ip]:80", ":::", "."])
def test_malformed_names_do_not_raise_and_match_nothing_real(raw: str) -> None:
    name = http_routing.normalize_hostname(raw)
    assert name not in {"hello.localhost", "[::1]"}


def test_route_names_are_host_then_aliases_then_service_names() -> None:
    configs = [{"host": "Hello.Localhost, hello-alt.localhost.", "host-aliases": "alias.example:80,hello.localhost"}]
    assert http_routing.route_names(configs, namespace="apps", service="hello") == (
        "hello.localhost",
        "hello-alt.localhost",
        "alias.example",
        "hello.apps",
        "hello.apps.svc",
        "hello.apps.svc.cluster.local",
    )


def test_route_names_without_service_or_host() -> None:
    assert http_routing.route_names([{"host": "a.example"}]) == ("a.example",)
    assert http_routing.route_names([{}], namespace="x", service="api") == (
        "api.x", "api.x.svc", "api.x.svc.cluster.local")
    assert http_routing.route_names([], service="api") == ("api.default", "api.default.svc",
                                                           "api.default.svc.cluster.local")
    assert http_routing.route_names([{"host": " , ", "host-aliases": 7}]) == ()


def _workload(namespace: str = "apps") -> messages.Workload:
    return messages.Workload(
        namespace=namespace,
        name="w",
        wit_world=messages.WitWorld(host_interfaces=[
            messages.WitInterface(namespace="wasi", package="config", interfaces=["store"],
                                  config={"host": "not-me"}),
            messages.WitInterface(namespace="wasi", package="http", interfaces=["incoming-handler"],
                                  config={"host": "hello.localhost", "host-aliases": "mine.example"}),
        ]),
    )


def test_injected_service_names_land_in_host_aliases_of_the_handler_only() -> None:
    wl = _workload()
    injected = http_routing.with_service_aliases(wl.wit_world.host_interfaces, service="hello", namespace="apps")
    assert injected[0] == wl.wit_world.host_interfaces[0]
    assert injected[1].config == {
        "host": "hello.localhost",
        "host-aliases": "mine.example,hello.apps,hello.apps.svc,hello.apps.svc.cluster.local",
    }
    assert wl.wit_world.host_interfaces[1].config["host-aliases"] == "mine.example"  # input untouched
    again = http_routing.with_service_aliases(injected, service="hello", namespace="apps")
    assert again[1].config == injected[1].config  # idempotent
    assert http_routing.with_service_aliases(injected, service=None, namespace="apps") == injected


def test_gateway_and_host_derive_the_same_names() -> None:
    """The gateway reads the Workload object; the host reads the start request the operator built from
    it (Service names injected into host-aliases). Both must end with the same set of names."""
    workload_obj = {
        "metadata": {"name": "w", "namespace": "apps"},
        "spec": {
            "hostInterfaces": [
                {"namespace": "wasi", "package": "config", "interfaces": ["store"], "config": {"host": "not-me"}},
                {"namespace": "wasi", "package": "http", "interfaces": ["incoming-handler"],
                 "config": {"host": "hello.localhost", "host-aliases": "mine.example"}},
            ],
            "kubernetes": {"service": {"name": "hello"}},
        },
        "status": {},
    }
    gateway_names = routes.workload_info(workload_obj).hostnames
    wl = _workload()
    start = wl.model_copy(update={"wit_world": messages.WitWorld(host_interfaces=http_routing.with_service_aliases(
        wl.wit_world.host_interfaces, service="hello", namespace="apps"))})
    host_names = translation.http_hostnames(start)
    assert tuple(host_names) == gateway_names
    assert "not-me" not in gateway_names


def test_no_route_header_is_one_name() -> None:
    assert http_routing.NO_ROUTE_HEADER == "X-Wasmfleet-No-Route"
    assert http_routing.NO_ROUTE_HEADER.lower() == http1.NO_ROUTE_HEADER
    assert not hasattr(proxying, "NO_ROUTE_HEADER")
