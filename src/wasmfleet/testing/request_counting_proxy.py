"""A reverse proxy in front of an API server that records every request, for tests and benchmarks
that must count what the API server sees (e.g. how many watches a client opens).

    proxy = CountingProxy(upstream="https://127.0.0.1:6443")
    url = await proxy.start()
    kubeconfig = proxy.kubeconfig(original, tmp_path / "via-proxy")  # same identity, through the proxy
    ...
    proxy.watches()   # Counter of watch requests by collection path
    await proxy.stop()

Responses are streamed through unchanged (watch streams stay open). The proxy speaks plain HTTP on
loopback and TLS to the upstream without verifying it (it is the test's own server).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import yaml
from aiohttp import web

_HOP_BY_HOP = {"host", "content-length", "transfer-encoding", "connection", "keep-alive"}


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    watch: bool


class CountingProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.seen: list[Seen] = []
        self.open_watches: Counter[str] = Counter()
        """Watch streams open now, by collection path."""
        self._session: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None
        self.url = ""

    def watches(self) -> Counter[str]:
        """Watch requests started so far, by collection path."""
        return Counter(s.path for s in self.seen if s.watch)

    async def start(self) -> str:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None),
                                              connector=aiohttp.TCPConnector(ssl=False, limit=0))
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    def kubeconfig(self, original: Path, into: Path) -> Path:
        """A copy of `original` (same user and token) whose clusters point at this proxy."""
        config = yaml.safe_load(original.read_text())
        for entry in config.get("clusters") or []:
            cluster = entry.get("cluster") or {}
            cluster["server"] = self.url
            cluster.pop("certificate-authority-data", None)
            cluster.pop("certificate-authority", None)
        into.parent.mkdir(parents=True, exist_ok=True)
        into.write_text(yaml.safe_dump(config))
        return into

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        watch = request.query.get("watch") in ("true", "1")
        self.seen.append(Seen(request.method, request.path, watch))
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        body = await request.read()
        if watch:
            self.open_watches[request.path] += 1
        try:
            async with self._session.request(request.method, self.upstream + request.path_qs, headers=headers,
                                             data=body or None) as upstream:
                response = web.StreamResponse(status=upstream.status)
                if "Content-Type" in upstream.headers:
                    response.headers["Content-Type"] = upstream.headers["Content-Type"]
                await response.prepare(request)
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
                await response.write_eof()
                return response
        finally:
            if watch:
                self.open_watches[request.path] -= 1
