"""A real HTTP server that hands out a component after a delay: a slow artifact fetch for host tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web


@asynccontextmanager
async def serving_slowly(data: bytes, delay_s: float) -> AsyncIterator[str]:
    """Yield the URL of `data`, answered `delay_s` seconds after each request."""

    async def handler(request: web.Request) -> web.Response:
        await asyncio.sleep(delay_s)
        return web.Response(body=data)

    app = web.Application()
    app.router.add_get("/slow.wasm", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}/slow.wasm"
    finally:
        await runner.cleanup()
