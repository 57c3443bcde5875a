"""The gateway's routing table and backend choice, as pure functions.

Checks:
- Host header lookups are normalised (port, case, trailing dot; the rules are tests/unit/test_http_routing);
- a workload's hostnames come from its wasi:http incoming-handler config (`host` as a comma list, and
  `host-aliases`) only;
- kubernetes.service adds `<svc>.<ns>`, `<svc>.<ns>.svc`, `<svc>.<ns>.svc.cluster.local` and a Service
  entry for EndpointSlices;
- only Ready workloads on known, not-unready hosts with hostname+httpPort are routed; deleting ones not;
- replicas on different hosts are all backends; two on one host collapse into one backend;
- the balancer rotates among ties, prefers fewer outstanding requests, skips ejected backends for a
  while (fake clock) but uses them when nothing else is left, and skips already tried ones.
"""

from __future__ import annotations

from typing import Any

from wasmfleet.gateway import balancing, routes


def host(name: str, host_id: str, port: int, ready: str | None = "True", hostname: str = "127.0.0.1") -> Any:
    obj: dict[str, Any] = {
        "apiVersion": "runtime.wasmcloud.dev/v1alpha1",
        "kind": "Host",
        "metadata": {"name": name, "labels": {"hostgroup": "default"}},
        "hostId": host_id,
        "hostname": hostname,
        "httpPort": port,
    }
    if ready is not None:
        obj["status"] = {"conditions": [{"type": "Ready", "status": ready}]}
    return obj


def workload(
    name: str,
    host_id: str | None,
    *,
    ready: bool = True,
    http_host: str | None = "hello.localhost",
    service: str | None = None,
    aliases: str | None = None,
    ns: str = "default",
    deleting: bool = False,
) -> Any:
    interfaces: list[dict[str, Any]] = [
        {"namespace": "wasi", "package": "config", "interfaces": ["store"], "config": {"host": "not-me"}},
    ]
    if http_host is not None:
        config = {"host": http_host} if aliases is None else {"host": http_host, "host-aliases": aliases}
        interfaces.append(
            {"namespace": "wasi", "package": "http", "interfaces": ["incoming-handler"], "config": config}
        )
    spec: dict[str, Any] = {"components": [{"name": "c", "image": "x"}], "hostInterfaces": interfaces}
    if service:
        spec["kubernetes"] = {"service": {"name": service}}
    meta: dict[str, Any] = {"name": name, "namespace": ns}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    status: dict[str, Any] = {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}
    if host_id:
        status["hostId"] = host_id
    return {"metadata": meta, "spec": spec, "status": status}


def table(hosts: list[Any], wls: list[Any]) -> routes.RoutingTable:
    return routes.build_table(
        [h for h in (routes.host_info(o) for o in hosts) if h], [routes.workload_info(o) for o in wls]
    )


def test_host_header_lookup_is_normalised() -> None:
    t = table([host("h1", "H1", 9001)], [workload("w1", "H1")])
    for spelling in ("Hello.LocalHost:8000", "hello.localhost.", " HELLO.localhost.:80 "):
        assert t.route_name(spelling) == "hello.localhost"
        assert t.backends_for(spelling) == (routes.Backend("127.0.0.1", 9001),)


def test_comma_list_and_host_aliases_are_all_routed() -> None:
    t = table([host("h1", "H1", 9001)], [workload("w1", "H1", http_host="a.localhost, B.localhost",
                                                 aliases="c.example")])
    assert set(t.routes) == {"a.localhost", "b.localhost", "c.example"}


def test_hostname_comes_from_the_http_incoming_handler_config() -> None:
    t = table([host("h1", "H1", 9001)], [workload("w1", "H1")])
    assert set(t.routes) == {"hello.localhost"}
    assert t.backends_for("hello.localhost:8000") == (routes.Backend("127.0.0.1", 9001),)
    assert t.backends_for("not-me") == ()
    assert t.backends_for(None) == ()


def test_service_adds_aliases_and_an_endpoint_entry() -> None:
    t = table([host("h1", "H1", 9001)], [workload("w1", "H1", service="hello", ns="apps")])
    assert set(t.routes) == {"hello.localhost", "hello.apps", "hello.apps.svc", "hello.apps.svc.cluster.local"}
    key = routes.ServiceKey("apps", "hello")
    assert [b.host_name for b in t.services[key]] == ["h1"]


def test_service_alone_routes_without_a_config_host() -> None:
    t = table([host("h1", "H1", 9001)], [workload("w1", "H1", http_host=None, service="api")])
    assert set(t.routes) == {"api.default", "api.default.svc", "api.default.svc.cluster.local"}


def test_only_ready_workloads_on_usable_hosts_are_routed() -> None:
    hosts = [
        host("ok", "OK", 9001),
        host("unknown", "UNK", 9002, ready=None),
        host("down", "DOWN", 9003, ready="False"),
        {"metadata": {"name": "noport"}, "hostId": "NOPORT", "hostname": "127.0.0.1"},
    ]
    wls = [
        workload("a", "OK"),
        workload("b", "UNK"),
        workload("c", "DOWN"),
        workload("d", "NOPORT"),
        workload("e", "OK", ready=False),
        workload("f", None),
        workload("g", "GONE"),
        workload("h", "OK", deleting=True, http_host="other.localhost"),
    ]
    t = table(hosts, wls)
    assert set(t.routes) == {"hello.localhost"}
    assert [b.port for b in t.routes["hello.localhost"]] == [9001, 9002]


def test_host_fields_under_spec_are_accepted_too() -> None:
    doc_form = {"metadata": {"name": "h"}, "spec": {"hostId": "H", "hostname": "10.0.0.5", "httpPort": 4000}}
    t = table([doc_form], [workload("w", "H")])
    assert t.routes["hello.localhost"] == (routes.Backend("10.0.0.5", 4000),)


def test_replicas_spread_are_all_backends_and_colocated_ones_collapse() -> None:
    hosts = [host("h1", "H1", 9001), host("h2", "H2", 9002)]
    t = table(hosts, [workload("a", "H1"), workload("b", "H2"), workload("c", "H2")])
    assert [b.port for b in t.routes["hello.localhost"]] == [9001, 9002]


def test_ipv6_backend_authority_is_bracketed() -> None:
    assert routes.Backend("::1", 80).authority == "[::1]:80"


B1, B2, B3 = (routes.Backend("127.0.0.1", p) for p in (1, 2, 3))


def test_balancer_rotates_among_ties_and_prefers_fewer_outstanding() -> None:
    bal = balancing.Balancer()
    picks = [bal.choose("r", [B1, B2, B3], set()) for _ in range(6)]
    assert picks == [B1, B2, B3, B1, B2, B3]
    bal.acquire(B1)
    bal.acquire(B2)
    assert {bal.choose("r", [B1, B2, B3], set()) for _ in range(5)} == {B3}
    bal.release(B1)
    bal.release(B2)
    assert bal.outstanding(B1) == 0


def test_balancer_skips_ejected_for_a_while_and_tried_ones() -> None:
    now = [100.0]
    bal = balancing.Balancer(eject_s=3.0, clock=lambda: now[0])
    bal.eject(B1)
    assert {bal.choose("r", [B1, B2], set()) for _ in range(4)} == {B2}
    assert bal.choose("r", [B1, B2], {B2}) == B1  # nothing else left: try the ejected one
    now[0] += 3.5
    assert {bal.choose("r", [B1, B2], set()) for _ in range(4)} == {B1, B2}
    assert bal.choose("r", [B1], {B1}) is None
