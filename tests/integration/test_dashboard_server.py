"""The dashboard's server against the real embedded API server (a `wasmfleet apiserver` process),
through aiohttp's test client; no browser here (tests/e2e/test_dashboard.py has one).

Checks:
- a non-loopback --addr without --token or --auth-header is refused with a message naming both, by
  the CLI (exit 2) and by serving.run; loopback needs neither; a malformed --addr or --metrics-url is
  a one-line usage error;
- with --token: /healthz stays open to probes; no token -> 401, a wrong one -> 401, Bearer -> 200,
  `?token=` -> 303 setting an HttpOnly cookie that then opens every page; with --auth-header: 401
  without the header, the viewer shown with it;
- read-only: POST/PUT/DELETE -> 405;
- a Secret's value (and its base64 form) is on no page and in no SSE event, even when a Workload
  names the Secret, and the dashboard never requests a Secret from the API server (counted by a
  proxy in front of it);
- five SSE clients on three pages: every one receives the change within 1 s, while the API server
  sees exactly one watch per kind (counted by the proxy);
- unknown pages -> 404, an unknown stream page -> 400, a bad ?page= -> 404;
- the workloads list is paged (200 a page): page 2 of 205 workloads shows 5, linked from page 1.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from click.testing import CliRunner

from wasmfleet.cli import main
from wasmfleet.dashboard import access, log_tails, scraping, serving, watching
from wasmfleet.dashboard.settings import DashboardSettings
from wasmfleet.kube import client, rest_paths
from wasmfleet.testing.apiserver import running_apiserver
from wasmfleet.testing.request_counting_proxy import CountingProxy

SECRET_VALUE = "hunter2-very-secret-7781"
PAGES = ("/", "/deployments", "/workloads", "/placement", "/events", "/workloads/default/reader")


@pytest.fixture
def kubeconfig(tmp_path: Path) -> Iterator[Path]:
    with running_apiserver(tmp_path / "api") as path:
        yield path


@pytest.fixture
async def proxy(kubeconfig: Path, tmp_path: Path) -> AsyncIterator[tuple[CountingProxy, Path]]:
    import yaml

    server = yaml.safe_load(kubeconfig.read_text())["clusters"][0]["cluster"]["server"]
    counting = CountingProxy(server)
    await counting.start()
    try:
        yield counting, counting.kubeconfig(kubeconfig, tmp_path / "via-proxy" / "kubeconfig")
    finally:
        await counting.stop()


@contextlib.asynccontextmanager
async def dashboard_client(kubeconfig: Path, **settings: Any) -> AsyncIterator[tuple[TestClient[Any, Any],
                                                                                     serving.Dashboard]]:
    config = DashboardSettings(**settings)
    kube = await client.KubeClient.from_kubeconfig(kubeconfig)
    fleet = watching.FleetWatch(kube)
    dashboard = serving.Dashboard(fleet, scraping.Scraper(()), log_tails.LogReader(None), config)
    watch = asyncio.create_task(fleet.run())
    test_client = TestClient(TestServer(serving.build_app(dashboard, config)))
    await test_client.start_server()
    try:
        await asyncio.wait_for(fleet.wait_synced(), 10)
        yield test_client, dashboard
    finally:
        await test_client.close()
        watch.cancel()
        await asyncio.wait({watch})
        await kube.close()


def workload(name: str, *, secret: str | None = None) -> dict[str, Any]:
    component: dict[str, Any] = {"name": "app", "image": "file:///nowhere/app.wasm"}
    if secret:
        component["localResources"] = {"environment": {"secretFrom": [{"name": secret}]}}
    return {
        "apiVersion": "runtime.wasmcloud.dev/v1alpha1", "kind": "Workload",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"hostSelector": {"hostgroup": "default"}, "components": [component],
                 "hostInterfaces": [{"namespace": "wasi", "package": "http", "interfaces": ["incoming-handler"],
                                     "config": {"host": f"{name}.localhost"}}]},
    }


def test_a_non_loopback_address_needs_a_token_or_an_auth_header(tmp_path: Path) -> None:
    kc = tmp_path / "kubeconfig"
    kc.write_text("{}")
    result = CliRunner().invoke(main.cli, ["dashboard", "--kubeconfig", str(kc), "--addr", "0.0.0.0:0"])
    assert result.exit_code == 2, result.output
    assert "--addr 0.0.0.0 is not a loopback address" in result.output
    assert "--token" in result.output and "--auth-header" in result.output
    bad = CliRunner().invoke(main.cli, ["dashboard", "--kubeconfig", str(kc), "--addr", "nonsense"])
    assert bad.exit_code == 2 and "'nonsense' is not HOST:PORT" in bad.output
    bad = CliRunner().invoke(main.cli, ["dashboard", "--kubeconfig", str(kc), "--metrics-url", "gateway:8000"])
    assert bad.exit_code == 2 and "'gateway:8000' is not an http(s) URL" in bad.output
    with pytest.raises(access.ExposureError):
        access.check_exposure("192.168.1.10", None, None)
    for host in ("127.0.0.1", "::1", "localhost", "127.0.0.5"):
        access.check_exposure(host, None, None)
    access.check_exposure("0.0.0.0", "t0ken", None)
    access.check_exposure("0.0.0.0", None, "X-Forwarded-User")


async def test_serving_refuses_a_non_loopback_address_without_credentials(kubeconfig: Path) -> None:
    with pytest.raises(access.ExposureError):
        await serving.run(str(kubeconfig), DashboardSettings(host="0.0.0.0", port=0))


async def test_a_token_is_required_when_set_and_a_cookie_carries_it(kubeconfig: Path) -> None:
    async with dashboard_client(kubeconfig, token="s3cret-token") as (http, _):
        assert (await http.get("/")).status == 401
        assert (await http.get("/static/dashboard.js")).status == 401
        assert (await http.get("/healthz")).status == 200  # probes carry no token
        assert (await http.get("/", headers={"Authorization": "Bearer wrong"})).status == 401
        assert (await http.get("/stream?page=/")).status == 401
        ok = await http.get("/workloads", headers={"Authorization": "Bearer s3cret-token"})
        assert ok.status == 200 and "<h1>Workloads</h1>" in await ok.text()
        assert (await http.get("/?token=wrong", allow_redirects=False)).status == 401
        redirect = await http.get("/events?token=s3cret-token", allow_redirects=False)
        assert redirect.status == 303 and redirect.headers["Location"] == "/events"
        assert "HttpOnly" in redirect.headers["Set-Cookie"]
        http.session.cookie_jar.update_cookies({access.COOKIE: "s3cret-token"})
        assert (await http.get("/placement")).status == 200
        assert (await http.post("/", headers={"Authorization": "Bearer s3cret-token"})).status == 405


async def test_an_auth_header_is_required_when_set_and_names_the_viewer(kubeconfig: Path) -> None:
    async with dashboard_client(kubeconfig, auth_header="X-Forwarded-User") as (http, _):
        denied = await http.get("/")
        assert denied.status == 401 and "X-Forwarded-User" in await denied.text()
        page = await http.get("/", headers={"X-Forwarded-User": "ada@example.org"})
        assert page.status == 200 and "ada@example.org" in await page.text()
        for method in ("POST", "PUT", "DELETE", "PATCH"):
            refused = await http.request(method, "/workloads", headers={"X-Forwarded-User": "ada"})
            assert refused.status == 405


async def test_loopback_without_credentials_serves_everyone_and_unknown_pages_are_404(kubeconfig: Path) -> None:
    async with dashboard_client(kubeconfig) as (http, _):
        assert (await http.get("/")).status == 200
        assert (await http.get("/static/dashboard.js")).status == 200
        assert (await http.get("/nope")).status == 404
        assert (await http.get("/stream?page=/nope")).status == 400
        assert (await http.get("/workloads?page=zero")).status == 404


async def test_the_workloads_list_is_paged(kubeconfig: Path) -> None:
    kube = await client.KubeClient.from_kubeconfig(kubeconfig)
    try:
        sem = asyncio.Semaphore(16)

        async def create(i: int) -> None:
            async with sem:
                await kube.create(rest_paths.WORKLOADS, "default", workload(f"w-{i:03d}"))

        await asyncio.gather(*(create(i) for i in range(205)))
        async with dashboard_client(kubeconfig) as (http, _):
            first = await (await http.get("/workloads")).text()
            second = await (await http.get("/workloads?page=2")).text()
        assert first.count("<tr data-workload=") == 200 and 'href="/workloads?page=2"' in first
        assert second.count("<tr data-workload=") == 5 and "201-205 of 205" in second
        assert 'data-workload="w-204"' in second and 'data-workload="w-204"' not in first
    finally:
        await kube.close()


async def _sse_events(http: TestClient[Any, Any], page: str, into: list[tuple[float, str, str]]) -> None:
    async with http.get(f"/stream?page={page}") as resp:
        assert resp.status == 200
        name = ""
        async for raw in resp.content:
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                into.append((time.monotonic(), name, line[6:]))


async def test_secret_values_are_never_read_nor_shown(proxy: tuple[CountingProxy, Path]) -> None:
    counting, kubeconfig = proxy
    kube = await client.KubeClient.from_kubeconfig(kubeconfig)
    try:
        await kube.create(rest_paths.SECRETS, "default", {
            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "default"},
            "stringData": {"password": SECRET_VALUE}})
        await kube.create(rest_paths.WORKLOADS, "default", workload("reader", secret="db"))
        async with dashboard_client(kubeconfig) as (http, _):
            events: list[tuple[float, str, str]] = []
            readers = [asyncio.create_task(_sse_events(http, page, events)) for page in PAGES]
            texts = [await (await http.get(page)).text() for page in PAGES]
            await asyncio.sleep(0.5)
            for reader in readers:
                reader.cancel()
            await asyncio.wait(readers)
        everything = "\n".join(texts + [data for _, _, data in events])
        assert "reader" in everything  # the pages did show the workload
        assert SECRET_VALUE not in everything
        assert base64.b64encode(SECRET_VALUE.encode()).decode() not in everything
        assert not [s for s in counting.seen if "/secrets" in s.path and s.method == "GET"
                    and s.path != "/api/v1/namespaces/default/secrets"], "the dashboard read a Secret"
        assert [s for s in counting.seen if "/secrets" in s.path] == [
            s for s in counting.seen if s.method == "POST" and "/secrets" in s.path], "only the test's create"
    finally:
        await kube.close()


async def test_several_browser_tabs_share_one_watch_per_kind(proxy: tuple[CountingProxy, Path]) -> None:
    counting, kubeconfig = proxy
    kube = await client.KubeClient.from_kubeconfig(kubeconfig)
    try:
        async with dashboard_client(kubeconfig) as (http, _):
            tabs: list[list[tuple[float, str, str]]] = [[] for _ in range(5)]
            readers = [asyncio.create_task(_sse_events(http, page, tabs[i]))
                       for i, page in enumerate(("/", "/workloads", "/workloads", "/workloads?page=1", "/"))]
            while not all(tabs):
                await asyncio.sleep(0.05)
            created_at = time.monotonic()
            await kube.create(rest_paths.WORKLOADS, "default", workload("fresh"))
            await asyncio.sleep(1.5)
            # Each tab's first re-render after the create (the overview counts it, the lists name it).
            seen_after = [min((t for t, name, _ in tab if name == "live" and t > created_at), default=float("inf"))
                          - created_at for tab in tabs]
            assert all("fresh" in data or "data-count=workloads>1<" in data for tab in tabs
                       for t, name, data in tab if name == "live" and t > created_at)
            assert any("fresh" in data for t, _, data in tabs[1] if t > created_at), "the workloads tab missed it"
            for reader in readers:
                reader.cancel()
            await asyncio.wait(readers)
        assert all(delay < 1.0 for delay in seen_after), f"change reached the tabs after {seen_after} s"
        watches = counting.watches()
        expected = {res.path(None) for res in watching.KINDS}
        assert set(watches) == expected, watches
        assert all(n == 1 for n in watches.values()), f"more than one watch per kind: {watches}"
    finally:
        await kube.close()
