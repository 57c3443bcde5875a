"""HTTP forwarding by Host header to the hosts serving it: aiohttp's low-level server downstream, the
small pooled client of `upstream` towards the hosts.

Behaviour:
- the Host header, normalised by the shared contract (`bus.http_routing`), picks the route and is
  forwarded unchanged (the host accepts every route name, and the guest sees the name the client
  used); no route -> 503 naming the host, no Host -> 400;
- among the route's hosts, least outstanding requests wins (`balancing`);
- a refused or failed connect is retried on another replica for every method (nothing was sent yet);
  so is a host's own refusal (route just removed, host draining: no component ran); a connection dropped
  before the response is retried only for idempotent methods; retrying needs the body again, so bodies up
  to ``buffer_limit`` bytes with a Content-Length are buffered, larger ones stream and are not retried;
- request and response bodies stream in both directions; only small ones with a known length are held
  whole (retries, one-write responses); Content-Encoding passes through;
- X-Forwarded-For is appended to, X-Forwarded-Proto and X-Forwarded-Host describe this hop;
- 502 when no replica could be reached, 504 when a host stays silent longer than the response timeout;
- responses carry ``X-Wasmfleet-Host`` naming the Host object that served them (debugging, tests);
- ``/healthz`` and ``/metrics`` are answered by the gateway itself for any Host no route claims (so
  ``curl localhost:8000/healthz`` works while ``hello.localhost`` paths all go to the workload).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Iterable

from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from wasmfleet.bus import http_routing
from wasmfleet.gateway import balancing, metrics, routes
from wasmfleet.gateway import upstream as upstream_mod
from wasmfleet.gateway.settings import GatewaySettings
from wasmfleet.observability import metrics_auth

log = logging.getLogger(__name__)

HOP_BY_HOP = frozenset(
    h.lower()
    for h in (
        "Connection",
        "Keep-Alive",
        "Proxy-Authenticate",
        "Proxy-Authorization",
        "Proxy-Connection",
        "TE",
        "Trailer",
        "Transfer-Encoding",
        "Upgrade",
    )
)
BACKEND_HEADER = "X-Wasmfleet-Host"
"""Response header naming the Host that answered (see GatewaySettings.backend_header)."""
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})


def _forwardable(headers: CIMultiDictProxy[str] | CIMultiDict[str], extra_drop: Iterable[str] = ()) -> CIMultiDict[str]:
    """Copy of ``headers`` without hop-by-hop ones (including those the Connection header names)."""
    drop = set(HOP_BY_HOP) | {d.lower() for d in extra_drop}
    for value in headers.getall("Connection", []):
        drop |= {token.strip().lower() for token in value.split(",") if token.strip()}
    out: CIMultiDict[str] = CIMultiDict()
    for key, value in headers.items():
        if key.lower() not in drop:
            out.add(key, value)
    return out


def _text(status: int, message: str) -> web.Response:
    return web.Response(status=status, text=message.rstrip("\n") + "\n")


class _RetryableError(Exception):
    """A failure after which the request may go to another replica."""

    def __init__(self, message: str, *, eject: bool = True) -> None:
        super().__init__(message)
        self.eject = eject
        """Whether the backend should get no new requests for a while (dead) or only not this one."""


# What a wasmfleet host answers by itself, before any component runs, carries
# http_routing.NO_ROUTE_HEADER. The gateway's table can lag the hosts by a watch event: a request may
# reach a host that just stopped serving the route or started draining. Such a refusal is safe to retry
# elsewhere for every method; a component's own 404 or 503 is passed on untouched.
HOST_REJECTIONS = {404: "host no longer serves this route", 503: "host is draining"}


async def _host_rejection(upstream: upstream_mod.Response) -> tuple[str | None, bytes | None]:
    """(reason, body): reason is set when ``upstream`` is a host's own refusal rather than a component's
    answer; body is set whenever it had to be read to tell (the caller must then send it on itself)."""
    reason = HOST_REJECTIONS.get(upstream.status)
    if reason is None or not upstream.headers.get(http_routing.NO_ROUTE_HEADER):
        return None, None
    return reason, await upstream.read()


class _Body:
    """The request body: absent, buffered (small, so it can be sent again), or a one-shot stream."""

    def __init__(self, present: bool, buffered: bytes | None) -> None:
        self.present = present
        self.buffered = buffered

    @classmethod
    async def of(cls, request: web.BaseRequest, limit: int) -> _Body:
        if not request.body_exists:
            return cls(False, None)
        if request.version >= (1, 1) and request.headers.get("Expect", "").lower() == "100-continue":
            # The client waits for this before sending its body. The gateway answers it itself (the
            # low-level server does not) and does not forward Expect: the body is streamed or buffered
            # here anyway.
            await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        length = request.content_length
        if length is not None and length <= limit:
            return cls(True, await request.read())
        return cls(True, None)

    @property
    def replayable(self) -> bool:
        return not self.present or self.buffered is not None

    def data(self, request: web.BaseRequest) -> bytes | AsyncIterator[bytes] | None:
        if not self.present:
            return None
        if self.buffered is not None:
            return self.buffered
        return request.content.iter_chunked(64 * 1024)


class Proxy:
    """The gateway's request path. ``table`` is replaced wholesale by the watcher (atomic swap)."""

    def __init__(self, settings: GatewaySettings, gw_metrics: metrics.GatewayMetrics | None = None,
                 metrics_guard: metrics_auth.MetricsGuard | None = None) -> None:
        self.settings = settings
        self.metrics_guard = metrics_guard
        """With --metrics-auth: /metrics needs a bearer token the API server allows."""
        self.metrics = gw_metrics or metrics.GatewayMetrics()
        self.balancer = balancing.Balancer(eject_s=settings.eject_s)
        self.table = routes.RoutingTable()
        self.synced = False
        """True once the first full list of Hosts and Workloads arrived (until then /healthz says 503)."""
        self._pool: upstream_mod.Pool | None = None

    def set_table(self, table: routes.RoutingTable) -> None:
        self.table = table
        self.synced = True
        self.balancer.forget_except({(b.address, b.port) for bs in table.routes.values() for b in bs})
        self.metrics.set_backends({name: len(bs) for name, bs in table.routes.items()})

    async def start(self) -> None:
        self._pool = upstream_mod.Pool(
            self.settings.connect_timeout_s, self.settings.response_timeout_s, self.settings.max_idle_per_host
        )

    async def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        host_header = request.headers.get("Host")
        route = self.table.route_name(host_header)
        if route is None:
            if self.metrics_guard is not None and request.path == "/metrics":
                verdict = await self.metrics_guard.verdict(request.headers.get("Authorization"))
                if not verdict.allowed:
                    return verdict.response()
            return self._own(request, host_header)
        started = time.perf_counter()
        series = self.metrics.route(route)
        series.in_flight.inc()
        code = 0
        try:
            response = await self._forward(request, route, series)
            code = response.status
            return response
        finally:
            series.in_flight.dec()
            series.answered(code or 499, time.perf_counter() - started)

    def _own(self, request: web.BaseRequest, host_header: str | None) -> web.Response:
        """Answers for requests no route claims: health, metrics, or a clear 503/400."""
        if request.path == "/healthz" and request.method in ("GET", "HEAD"):
            if self.synced:
                return _text(200, "ok")
            return _text(503, "not ready: waiting for the first list of Hosts and Workloads")
        if request.path == "/metrics" and request.method == "GET":
            return web.Response(body=self.metrics.render(), content_type="text/plain", charset="utf-8")
        if not host_header:
            response = _text(400, "request has no Host header; the gateway routes by Host")
        else:
            name = http_routing.normalize_hostname(host_header)
            # The body names only the host asked for: listing the others would tell any client every
            # hostname this gateway serves.
            response = _text(503, f"no ready workload serves host {name!r} on this gateway")
        self.metrics.requests.labels(route=metrics.UNKNOWN_ROUTE, code=str(response.status)).inc()
        return response

    async def _forward(self, request: web.BaseRequest, route: str, series: metrics.RouteMetrics) -> web.StreamResponse:
        backends = self.table.routes.get(route, ())
        body = await _Body.of(request, self.settings.buffer_limit)
        tried: set[routes.Backend] = set()
        stale_retry_used = False
        last_error = "no replica available"
        while True:
            backend = self.balancer.choose(route, backends, tried)
            if backend is None:
                return _text(502, f"bad gateway: no replica of {route!r} could be reached ({last_error})")
            if tried or stale_retry_used:
                series.retries.inc()
            self.balancer.acquire(backend)
            try:
                return await self._exchange(request, backend, body)
            except _RetryableError as exc:
                last_error = f"{backend.authority}: {exc}"
                log.info("upstream %s for %s failed, trying another: %s", backend.authority, route, exc)
                if isinstance(exc.__cause__, upstream_mod.StaleConnection) and not stale_retry_used:
                    # A pooled keep-alive connection the host closed meanwhile: the host may be fine.
                    stale_retry_used = True
                    continue
                tried.add(backend)
                if exc.eject:
                    self.balancer.eject(backend)
            except upstream_mod.UpstreamTimeout:
                return _text(
                    504,
                    f"gateway timeout: {backend.authority} sent nothing for "
                    f"{self.settings.response_timeout_s:g} s while serving {route!r}",
                )
            except upstream_mod.UpstreamError as exc:
                return _text(502, f"bad gateway: {backend.authority} failed while serving {route!r}: {exc}")
            finally:
                self.balancer.release(backend)

    async def _exchange(self, request: web.BaseRequest, backend: routes.Backend, body: _Body) -> web.StreamResponse:
        assert self._pool is not None, "Proxy.start() not called"
        headers = _forwardable(request.headers, ("Content-Length", "Expect"))
        peer = request.remote or ""
        prior = request.headers.get("X-Forwarded-For")
        headers["X-Forwarded-For"] = f"{prior}, {peer}" if prior else peer
        headers["X-Forwarded-Proto"] = request.scheme
        headers["X-Forwarded-Host"] = request.headers.get("Host", "")
        try:
            upstream = await self._pool.request(
                backend.address, backend.port, request.method, request.raw_path, headers.items(), body.data(request)
            )
        except upstream_mod.ConnectFailed as exc:
            # Connect failed: nothing of the request was sent, any method may go elsewhere.
            raise _RetryableError(str(exc)) from exc
        except upstream_mod.StaleConnection as exc:
            # A pooled connection closed before any response byte: usually the host closed it while idle,
            # but it may have died mid-request, so only an idempotent request is sent again.
            if body.replayable and request.method in IDEMPOTENT:
                raise _RetryableError(str(exc), eject=False) from exc
            raise
        except upstream_mod.UpstreamBroken as exc:
            # The request may have reached the component: only an idempotent one may be sent again.
            if body.replayable and request.method in IDEMPOTENT:
                raise _RetryableError(str(exc)) from exc
            raise
        try:
            self.balancer.restore(backend)
            rejection, early_body = await _host_rejection(upstream)
            if rejection is not None and body.replayable:
                # The host refused before running anything (route just removed, host draining): any
                # method is safe to send to another replica. Only a draining host is ejected.
                raise _RetryableError(rejection, eject=upstream.status == 503)
            length = upstream.content_length
            if early_body is None and request.method != "HEAD" and length is not None and (
                    length <= self.settings.buffer_limit):
                # Small and complete: one write instead of headers, chunk and end separately. Nothing is
                # lost in streaming terms (the host sent a Content-Length, so it had the whole body).
                early_body = await upstream.read()
            if early_body is not None:
                whole = web.Response(status=upstream.status, reason=upstream.reason, body=early_body)
                for key, value in _forwardable(upstream.headers, ("Content-Length",)).items():
                    whole.headers.add(key, value)
                if self.settings.backend_header:
                    whole.headers[BACKEND_HEADER] = backend.host_name or backend.authority
                return whole
            response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
            for key, value in _forwardable(upstream.headers).items():
                response.headers.add(key, value)
            if self.settings.backend_header:
                response.headers[BACKEND_HEADER] = backend.host_name or backend.authority
            await response.prepare(request)
            try:
                async for chunk in upstream.iter_chunks(self.settings.chunk_size):
                    await response.write(chunk)
            except upstream_mod.UpstreamError as exc:
                # Headers are out: the status cannot change any more. Cutting the connection is the only
                # honest signal left (the client sees a truncated body, not a complete wrong one).
                log.warning("upstream %s broke off a response body: %s", backend.authority, exc)
                if request.transport is not None:
                    request.transport.close()
                return response
            await response.write_eof()
            return response
        finally:
            upstream.close()  # no-op once the body was read to the end (the connection is back in the pool)


class Served:
    """A listening proxy: ``port`` is the bound port; ``cleanup()`` stops accepting, lets in-flight requests
    finish (bounded by aiohttp's shutdown timeout) and closes the upstream connection pool."""

    def __init__(self, proxy: Proxy, runner: web.BaseRunner, port: int) -> None:
        self._proxy = proxy
        self._runner = runner
        self.port = port

    async def cleanup(self) -> None:
        await self._runner.cleanup()
        await self._proxy.close()


async def serve(proxy: Proxy, host: str, port: int) -> tuple[Served, int]:
    """Start listening; returns the handle (for cleanup) and the bound port (``port=0`` picks one).

    aiohttp's low-level server: every request goes to one handler, so the Application's router, middleware
    chain and per-request app plumbing (a measurable share of a proxied request) are skipped."""
    if proxy._pool is None:
        await proxy.start()
    runner = web.ServerRunner(web.Server(proxy.handle), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    await site.start()
    server = site._server
    bound = port
    if server is not None and server.sockets:  # type: ignore[attr-defined]
        bound = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
    return Served(proxy, runner, bound), bound
