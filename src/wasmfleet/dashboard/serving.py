"""The dashboard's HTTP server: pages, their live updates over Server-Sent Events, and static files.

Every page is rendered on the server from the shared informers' caches (watching.py), so opening a page
costs the API server nothing. `/stream?page=PATH` keeps a browser tab current: after any watch event it
re-renders that page's live part once (shared by every tab on the same page and generation) and pushes
it as an `event: live`. The per-workload page's stream also carries `event: metrics` (each scrape) and
`event: logs` (every `LOG_REFRESH_S`, one NATS request per workload however many tabs show it).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources

from aiohttp import web
from yarl import URL

from wasmfleet.dashboard import access, log_tails, pages, scraping, views, watching
from wasmfleet.dashboard.settings import DashboardSettings
from wasmfleet.kube import client

log = logging.getLogger(__name__)

LOG_REFRESH_S = 2.0
KEEPALIVE_S = 15.0
STATIC_TYPES = {".js": "text/javascript", ".css": "text/css", ".txt": "text/plain"}


@dataclass(frozen=True)
class Page:
    title: str
    path: str
    render: Callable[[], str]
    workload: views.WorkloadRow | None = None
    is_workload_page: bool = False


class Dashboard:
    """The state every request reads: informers, scraper, log reader, and a render cache."""

    def __init__(self, fleet: watching.FleetWatch, scraper: scraping.Scraper, logs: log_tails.LogReader,
                 settings: DashboardSettings) -> None:
        self.fleet = fleet
        self.scraper = scraper
        self.logs = logs
        self.settings = settings
        self._rendered: dict[str, tuple[int, str]] = {}
        self._rows: tuple[int, list[views.WorkloadRow]] = (-1, [])
        self._row_cache: dict[str, tuple[tuple[str, str], views.WorkloadRow]] = {}
        self._tails: dict[tuple[str, str], tuple[float, log_tails.Tail]] = {}
        self._tail_locks: dict[tuple[str, str], asyncio.Lock] = {}
        self.stream_tasks: set[asyncio.Task[object]] = set()
        """The handlers of open SSE streams (browser tabs), ended at shutdown."""

    @property
    def streams(self) -> int:
        return len(self.stream_tasks)

    # ------------------------------------------------------------------------------------ pages

    def _hosts(self) -> list[views.HostRow]:
        return views.host_rows(self.fleet.objects("Host"), self.fleet.objects("Workload"))

    def _workloads(self) -> list[views.WorkloadRow]:
        """Every workload's row, sorted; computed once per generation for all pages, and each row again
        only when its object (resourceVersion) or its host's name changed: with a thousand workloads a
        change then costs one row, not a thousand."""
        generation = self.fleet.generation
        if self._rows[0] == generation:
            return self._rows[1]
        names = views.host_name_index(self.fleet.objects("Host"))
        rows, fresh = [], {}
        for obj in self.fleet.objects("Workload"):
            meta = obj["metadata"]
            key = f"{meta.get('namespace', '')}/{meta['name']}"
            stamp = (str(meta.get("resourceVersion", "")), names.get(str((obj.get("status") or {}).get("hostId")), ""))
            cached = self._row_cache.get(key)
            row = cached[1] if cached is not None and cached[0] == stamp else views.workload_row(obj, names)
            fresh[key] = (stamp, row)
            rows.append(row)
        rows.sort(key=lambda r: (r.namespace, r.name))
        self._row_cache = fresh
        self._rows = (generation, rows)
        return rows

    def page(self, target: str) -> Page | None:
        """The page at `target` (path and query, e.g. /workloads?page=2), or None for an unknown one."""
        url = URL(target)
        path = url.path
        if path == "/":
            return Page("Overview", path, lambda: pages.overview(
                self._hosts(), self._workloads(), views.deployment_rows(self.fleet.objects("WorkloadDeployment"))))
        if path == "/deployments":
            return Page("Deployments", path, lambda: pages.deployments(
                views.deployment_rows(self.fleet.objects("WorkloadDeployment"))))
        if path == "/workloads":
            number = url.query.get("page", "1")
            if not number.isdigit() or int(number) < 1:
                return None
            return Page("Workloads", str(url), lambda: pages.workloads(self._workloads(), int(number)))
        if path == "/events":
            return Page("Events", path, lambda: pages.events(views.event_rows(self.fleet.objects("Event"))))
        if path == "/placement":
            return Page("Placement", path, lambda: pages.placement(views.placement(self._hosts(), self._workloads())))
        parts = path.strip("/").split("/")
        if len(parts) == 3 and parts[0] == "workloads" and all(parts[1:]):
            namespace, name = parts[1], parts[2]

            def detail() -> str:
                return pages.workload_detail(self.workload(namespace, name), namespace, name)

            return Page(f"Workload {name}", path, detail, self.workload(namespace, name), is_workload_page=True)
        return None

    def workload(self, namespace: str, name: str) -> views.WorkloadRow | None:
        obj = self.fleet.get("Workload", namespace, name)
        if obj is None:
            return None
        return views.workload_row(obj, views.host_name_index(self.fleet.objects("Host")))

    def live(self, page: Page) -> str:
        """The page's live part at the current generation, rendered once for every tab showing it."""
        generation = self.fleet.generation
        cached = self._rendered.get(page.path)
        if cached is not None and cached[0] == generation:
            return cached[1]
        html = page.render()
        if len(self._rendered) > 256:  # per-workload pages come and go: keep the cache bounded
            self._rendered.clear()
        self._rendered[page.path] = (generation, html)
        return html

    async def tail(self, w: views.WorkloadRow) -> log_tails.Tail:
        key = (w.host_id, w.workload_id)
        lock = self._tail_locks.setdefault(key, asyncio.Lock())
        async with lock:
            cached = self._tails.get(key)
            if cached is not None and time.monotonic() - cached[0] < LOG_REFRESH_S * 0.9:
                return cached[1]
            tail = await self.logs.tail(w.host_id, w.workload_id)
            if len(self._tails) > 256:
                self._tails.clear()
                self._tail_locks = {key: lock}
            self._tails[key] = (time.monotonic(), tail)
            return tail

    def metrics(self, w: views.WorkloadRow) -> dict[str, object]:
        return {
            "routes": list(w.routes),
            "gateway": self.scraper.points([("route", r) for r in w.routes]) if w.routes else [],
            "host": self.scraper.points([("workload", w.workload_id)]) if w.workload_id else [],
            "targets": [{"url": t.url, "error": t.error} for t in self.scraper.targets],
        }


DASHBOARD_KEY = web.AppKey("dashboard", Dashboard)
ACCESS_KEY = web.AppKey("access", access.Access)
STATIC_KEY = web.AppKey("static", dict[str, bytes])


def _static_files() -> dict[str, bytes]:
    folder = resources.files("wasmfleet.dashboard") / "static"
    return {f.name: f.read_bytes() for f in folder.iterdir() if f.is_file()}


async def get_page(request: web.Request) -> web.Response:
    dashboard = request.app[DASHBOARD_KEY]
    page = dashboard.page(request.path_qs)
    if page is None:
        return web.Response(status=404, text=f"no page {request.path_qs}; see / for the overview\n")
    extra = pages.workload_extras() if page.is_workload_page else ""
    html = pages.shell(page.title, page.path, dashboard.live(page), extra=extra,
                       viewer=request.app[ACCESS_KEY].viewer(request) or "")
    return web.Response(text=html, content_type="text/html", headers={"Cache-Control": "no-store"})


def _event(name: str, data: str) -> bytes:
    lines = "".join(f"data: {line}\n" for line in data.split("\n"))
    return f"event: {name}\n{lines}\n".encode()


async def stream(request: web.Request) -> web.StreamResponse:
    dashboard = request.app[DASHBOARD_KEY]
    path = request.query.get("page", "/")
    if dashboard.page(path) is None:
        return web.Response(status=400, text=f"page={path!r} is not a dashboard page\n")
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store",
                                           "X-Accel-Buffering": "no"})
    await response.prepare(request)
    task = asyncio.current_task()
    assert task is not None
    dashboard.stream_tasks.add(task)
    try:
        await _push(dashboard, path, response)
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        dashboard.stream_tasks.discard(task)
    return response


async def _push(dashboard: Dashboard, path: str, response: web.StreamResponse) -> None:
    await response.write(b"retry: 1000\n\n")
    seen, tick_seen, logs_at, sent = -1, -1, 0.0, ""
    while True:
        page = dashboard.page(path)
        assert page is not None
        if dashboard.fleet.generation != seen:
            seen = dashboard.fleet.generation
            html = dashboard.live(page)
            if html != sent:  # a change elsewhere in the fleet need not reach this tab
                sent = html
                await response.write(_event("live", html))
        workload = page.workload
        if workload is not None:
            if dashboard.scraper.tick != tick_seen:
                tick_seen = dashboard.scraper.tick
                await response.write(_event("metrics", json.dumps(dashboard.metrics(workload))))
            if time.monotonic() - logs_at >= LOG_REFRESH_S:
                logs_at = time.monotonic()
                tail = await dashboard.tail(workload)
                await response.write(_event("logs", json.dumps({"lines": tail.lines, "error": tail.error})))
        waits = [asyncio.ensure_future(dashboard.fleet.wait_change(seen, KEEPALIVE_S))]
        if page.is_workload_page:
            waits.append(asyncio.ensure_future(dashboard.scraper.wait_tick(tick_seen, KEEPALIVE_S)))
        try:
            done, _ = await asyncio.wait(waits, timeout=LOG_REFRESH_S if page.is_workload_page else KEEPALIVE_S,
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
        if not done:
            await response.write(b": keepalive\n\n")  # lets proxies and the browser know the stream is alive
        await asyncio.sleep(dashboard.settings.push_gap_s)


async def get_static(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    body = request.app[STATIC_KEY].get(name)
    if body is None:
        return web.Response(status=404, text="no such file\n")
    content_type = next((t for ext, t in STATIC_TYPES.items() if name.endswith(ext)), "application/octet-stream")
    return web.Response(body=body, content_type=content_type, headers={"Cache-Control": "max-age=300"})


async def healthz(request: web.Request) -> web.Response:
    dashboard = request.app[DASHBOARD_KEY]
    synced = all(i.synced for i in dashboard.fleet.informers.values())
    body = {"synced": synced, "streams": dashboard.streams, "generation": dashboard.fleet.generation}
    return web.json_response(body, status=200 if synced else 503)


async def _end_streams(app: web.Application) -> None:
    for task in list(app[DASHBOARD_KEY].stream_tasks):
        task.cancel()


def build_app(dashboard: Dashboard, settings: DashboardSettings) -> web.Application:
    guard = access.Access(token=settings.token, auth_header=settings.auth_header)
    app = web.Application(middlewares=[access.middleware(guard)])
    app[DASHBOARD_KEY] = dashboard
    app[ACCESS_KEY] = guard
    app[STATIC_KEY] = _static_files()
    app.on_shutdown.append(_end_streams)
    app.router.add_get("/stream", stream)
    app.router.add_get("/static/{name}", get_static)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/{tail:.*}", get_page)
    return app


async def run(kubeconfig: str, settings: DashboardSettings, *, announce: Callable[[str], None] = print,
              stop: asyncio.Event | None = None) -> None:
    """Serve until cancelled (or `stop` is set). Raises access.ExposureError, ValueError (kubeconfig) or
    OSError (cannot listen)."""
    access.check_exposure(settings.host, settings.token, settings.auth_header)
    kube = await client.KubeClient.from_kubeconfig(kubeconfig)
    fleet = watching.FleetWatch(kube, settings.namespace)
    scraper = scraping.Scraper(settings.metrics_urls, interval_s=settings.metrics_interval_s,
                               authorization=kube.authorization)
    logs = log_tails.LogReader(settings.nats_url, settings.nats_options)
    dashboard = Dashboard(fleet, scraper, logs, settings)
    runner = web.AppRunner(build_app(dashboard, settings), access_log=None, shutdown_timeout=2.0)
    tasks = [asyncio.create_task(fleet.run()), asyncio.create_task(scraper.run())]
    try:
        await runner.setup()
        site = web.TCPSite(runner, settings.host, settings.port)
        await site.start()
        sockets = getattr(site._server, "sockets", None) or []
        port = int(sockets[0].getsockname()[1]) if sockets else settings.port
        host = f"[{settings.host}]" if ":" in settings.host else settings.host
        announce(f"dashboard on http://{host}:{port}/")
        await (stop.wait() if stop is not None else asyncio.Event().wait())
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.wait(tasks)
        await runner.cleanup()
        await logs.close()
        await kube.close()
