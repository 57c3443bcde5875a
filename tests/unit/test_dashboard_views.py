"""What the dashboard computes before any HTML goes out: traffic figures from Prometheus text (real
prometheus_client output) and the views of objects (pure functions).

Checks:
- the gateway's requests counter and duration histogram, rendered by a real prometheus_client registry,
  parse into per-route counts (5xx as errors) and buckets; host per-workload gauges (traps and
  timeouts as errors) too; other series are ignored;
- two scrapes give requests/s and errors/s over the interval, and p50/p99 interpolated in the bucket
  holding them; a counter that went down (a restart) counts from zero;
- views never carry an interface config value (other than route names) nor an image's userinfo/query;
- a rollout in progress is named (previous -> current ReplicaSet, an unobserved generation);
- the placement map counts replicas per host and deployment and marks a host more than one above
  the emptiest Ready host; unplaced replicas are listed apart.
"""

from __future__ import annotations

import prometheus_client as prom
import pytest

from wasmfleet.dashboard import pages, traffic, views


def gateway_text(observations: list[tuple[str, int, float]]) -> str:
    registry = prom.CollectorRegistry()
    requests = prom.Counter("wasmfleet_gateway_requests_total", "", ["route", "code"], registry=registry)
    duration = prom.Histogram("wasmfleet_gateway_request_duration_seconds", "", ["route"], registry=registry,
                              buckets=(0.001, 0.01, 0.1, 1))
    other = prom.Gauge("wasmfleet_gateway_route_backends", "", ["route"], registry=registry)
    other.labels("a.localhost").set(3)
    for route, code, seconds in observations:
        requests.labels(route, str(code)).inc()
        duration.labels(route).observe(seconds)
    return prom.generate_latest(registry).decode()


def test_gateway_and_host_series_parse_into_counts() -> None:
    snap = traffic.parse(gateway_text([("a.localhost", 200, 0.005)] * 8 + [("a.localhost", 503, 0.5)] * 2))
    counts = snap[("route", "a.localhost")]
    assert (counts.requests, counts.errors) == (10, 2)
    assert counts.buckets[0.01] == 8 and counts.buckets[float("inf")] == 10
    host = ('wasmfleet_host_http_requests_total{workload="w1"} 40\n'
            'wasmfleet_host_http_traps_total{workload="w1"} 3\n'
            'wasmfleet_host_http_timeouts_total{workload="w1"} 1\n'
            'wasmfleet_host_http_inflight 2\n')
    snap = traffic.parse(host)
    assert set(snap) == {("workload", "w1")}
    assert (snap[("workload", "w1")].requests, snap[("workload", "w1")].errors) == (40, 4)


def test_rates_and_quantiles_come_from_the_difference_of_two_scrapes() -> None:
    before = traffic.parse(gateway_text([("a", 200, 0.005)] * 10))[("route", "a")]
    after = traffic.parse(gateway_text([("a", 200, 0.005)] * 10 + [("a", 200, 0.05)] * 90
                                       + [("a", 500, 0.5)] * 10))[("route", "a")]
    p = traffic.point(after, before, 2.0, now=100.0)
    assert p.rps == pytest.approx(50.0) and p.errors_ps == pytest.approx(5.0)
    # 100 new observations: 90 in (0.01, 0.1], 10 in (0.1, 1]: p50 at rank 50 of the first bucket's 90
    assert p.p50_ms == pytest.approx((0.01 + 0.09 * 50 / 90) * 1000)
    assert p.p99_ms == pytest.approx((0.1 + 0.9 * 9 / 10) * 1000)
    restarted = traffic.point(before, after, 2.0, now=102.0)
    assert restarted.rps == pytest.approx(5.0)  # the counter went down: counted from zero


def test_no_observations_means_no_quantile() -> None:
    assert traffic.quantile(0.5, {}) is None
    assert traffic.quantile(0.99, {0.1: 0.0, float("inf"): 0.0}) is None
    assert traffic.quantile(0.99, {0.1: 0.0, float("inf"): 4.0}) == 0.1  # beyond the last bound


def test_workload_views_leave_config_values_and_image_credentials_out() -> None:
    w = {"metadata": {"name": "w", "namespace": "ns", "uid": "u1"},
         "spec": {"components": [{"name": "c", "image": "https://user:pw@example.org/c.wasm?sig=abc"}],
                  "hostInterfaces": [
                      {"namespace": "wasi", "package": "keyvalue", "interfaces": ["store"],
                       "config": {"password": "p4ssw0rd"}},
                      {"namespace": "wasi", "package": "http", "interfaces": ["incoming-handler"],
                       "config": {"host": "w.localhost"}}]},
         "status": {"hostId": "h1", "conditions": [{"type": "Ready", "status": "True"}]}}
    row = views.workload_row(w, {"h1": "host-one"})
    assert "p4ssw0rd" not in repr(row) and "pw@" not in repr(row) and "sig=abc" not in repr(row)
    assert row.components[0].image == "https://example.org/c.wasm"
    assert row.routes == ("w.localhost",) and row.host_name == "host-one" and row.ready
    assert row.interfaces == ["wasi:keyvalue/store", "wasi:http/incoming-handler"]


def test_a_rollout_in_progress_is_named_and_a_settled_deployment_is_not() -> None:
    rolling = {"metadata": {"name": "web", "namespace": "ns", "generation": 3},
               "spec": {"replicas": 3},
               "status": {"previousReplicaSet": "web-aaa", "currentReplicaSet": "web-bbb", "observedGeneration": 3,
                          "replicas": {"ready": 2, "current": 4, "unavailable": 1}, "currentReplicas": 4}}
    settled = {"metadata": {"name": "api", "namespace": "ns", "generation": 1}, "spec": {"replicas": 2},
               "status": {"observedGeneration": 1, "replicas": {"ready": 2}, "currentReplicas": 2}}
    unobserved = {"metadata": {"name": "db", "namespace": "ns", "generation": 5}, "spec": {"replicas": 1},
                  "status": {"observedGeneration": 4, "replicas": {"ready": 1}}}
    rows = {r.name: r for r in views.deployment_rows([rolling, settled, unobserved])}
    assert rows["web"].rollout == "web-aaa -> web-bbb" and (rows["web"].ready, rows["web"].current) == (2, 4)
    assert rows["api"].rollout == ""
    assert rows["db"].rollout == "new spec not yet observed"


def test_the_placement_map_marks_a_host_holding_more_than_one_above_the_emptiest() -> None:
    hosts = [{"metadata": {"name": f"h{i}", "labels": {"hostgroup": "default"}}, "hostId": f"id{i}",
              "status": {"conditions": [{"type": "Ready", "status": "True"}]}} for i in range(3)]
    placed = ["id0", "id0", "id0", "id1", None]
    workloads = [{"metadata": {"name": f"w{i}", "namespace": "ns",
                               "labels": {"runtime.wasmcloud.dev/workload-deployment": "web"}},
                  "status": {"hostId": host} if host else {}} for i, host in enumerate(placed)]
    rows = views.workload_rows(workloads, hosts)
    grid = views.placement(views.host_rows(hosts, workloads), rows)
    assert [grid.count(f"id{i}", "ns/web") for i in range(3)] == [3, 1, 0]
    assert grid.unplaced == {"ns/web": ["w4"]}
    html = pages.placement(grid)
    assert html.count(" hot") == 1 and 'data-cell="h0|ns/web"' in html
