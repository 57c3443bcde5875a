"""A real HTTP proxy in front of a real registry. With `tamper` (the default) it flips the last byte of
every blob it serves, so a client sees a layer whose bytes do not match their digest (no registry does
that on purpose); without, it forwards faithfully, e.g. to put the registry on another address."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
from aiohttp import web


@asynccontextmanager
async def tampering_proxy(
    upstream_url: str, *, tamper: bool = True, bind: str = "127.0.0.1", seen: list[str] | None = None
) -> AsyncIterator[str]:
    """Yields host:port of the proxy (plain HTTP on `bind`). `seen` collects "METHOD /path" of every
    request, for tests that count registry calls."""

    async def forward(request: web.Request) -> web.Response:
        if seen is not None:
            seen.append(f"{request.method} {request.path}")
        headers = {k: v for k, v in request.headers.items()
                   if k.lower() in ("accept", "authorization", "content-type")}
        location_base = f"http://{request.host}"
        async with (
            aiohttp.ClientSession() as session,
            session.request(request.method, f"{upstream_url}{request.path_qs}", headers=headers,
                            data=await request.read(), allow_redirects=False) as upstream,
        ):
            body = await upstream.read()
            if tamper and "/blobs/" in request.path and body:
                body = body[:-1] + bytes([body[-1] ^ 0xFF])
            kept = {k: v for k, v in upstream.headers.items()
                    if k.lower() in ("content-type", "docker-content-digest", "www-authenticate", "location")}
            if kept.get("Location", "").startswith(upstream_url):  # keep uploads going through us
                kept["Location"] = location_base + kept["Location"][len(upstream_url):]
            return web.Response(status=upstream.status, body=body, headers=kept)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", forward)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, bind, 0)
    await site.start()
    sockets = site._server.sockets if site._server is not None else []  # type: ignore[union-attr]
    try:
        yield f"{bind}:{sockets[0].getsockname()[1]}"
    finally:
        await runner.cleanup()
