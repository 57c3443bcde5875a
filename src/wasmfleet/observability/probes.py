"""The HTTP endpoints every long-running wasmfleet process serves: /metrics, /healthz, /readyz.

/readyz answers 503 with the list of what is missing, so a failing probe says why. The operator and
the host share this module (they may not import each other).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from wasmfleet.observability.metrics_auth import MetricsGuard


async def _nothing() -> None:
    return None


def build_app(
    registry: CollectorRegistry,
    not_ready: Callable[[], list[str]],
    refresh: Callable[[], Awaitable[None]] = _nothing,
    guard: MetricsGuard | None = None,
) -> web.Application:
    """`refresh` runs before each scrape, for gauges that are read from elsewhere on demand. With a
    `guard` (--metrics-auth), /metrics needs a bearer token the API server allows; the probes stay open
    (kubelets call them without credentials)."""

    async def get_metrics(request: web.Request) -> web.Response:
        if guard is not None:
            verdict = await guard.verdict(request.headers.get("Authorization"))
            if not verdict.allowed:
                return verdict.response()
        await refresh()
        return web.Response(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(_request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(_request: web.Request) -> web.Response:
        missing = not_ready()
        if missing:
            return web.Response(status=503, text="not ready: " + "; ".join(missing) + "\n")
        return web.Response(text="ok\n")

    app = web.Application()
    app.router.add_get("/metrics", get_metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app


async def serve(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Serve `app`; returns the runner (for cleanup) and the bound port (useful with port 0)."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    sockets = getattr(site._server, "sockets", None) or []
    return runner, int(sockets[0].getsockname()[1]) if sockets else port
