"""A real HTTP proxy in front of a real registry that flips the last byte of every blob it serves,
so a client sees a layer whose bytes do not match their digest (no registry does that on purpose)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
from aiohttp import web


@asynccontextmanager
async def tampering_proxy(upstream_url: str) -> AsyncIterator[str]:
    """Yields host:port of the proxy (plain HTTP on loopback)."""

    async def forward(request: web.Request) -> web.Response:
        headers = {k: v for k, v in request.headers.items() if k.lower() in ("accept", "authorization")}
        async with (
            aiohttp.ClientSession() as session,
            session.request(request.method, f"{upstream_url}{request.path_qs}", headers=headers) as upstream,
        ):
            body = await upstream.read()
            if "/blobs/" in request.path and body:
                body = body[:-1] + bytes([body[-1] ^ 0xFF])
            kept = {k: v for k, v in upstream.headers.items()
                    if k.lower() in ("content-type", "docker-content-digest", "www-authenticate")}
            return web.Response(status=upstream.status, body=body, headers=kept)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", forward)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    sockets = site._server.sockets if site._server is not None else []  # type: ignore[union-attr]
    try:
        yield f"127.0.0.1:{sockets[0].getsockname()[1]}"
    finally:
        await runner.cleanup()
