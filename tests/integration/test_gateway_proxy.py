"""The gateway's proxy against real local HTTP servers standing in for hosts.

The upstreams are real aiohttp servers on loopback ports (a host's HTTP port is just an HTTP server, and
these let a test control timing and failures precisely); the proxy is the real one, spoken to over real
TCP. The wasm path end to end is covered in tests/e2e/.

Checks:
- unknown Host -> 503 naming the host, no Host -> 400; /healthz 503 before the first table, 200 after;
- /metrics counts requests per route and code;
- sequential requests visit every replica; a replica busy with a slow request gets fewer new ones;
- a refused connection is retried on another replica, for GET and for POST with a body (nothing sent);
- a connection dropped after a POST was sent is not retried (502), and the upstream saw it once;
- every replica dead -> 502; a silent replica -> 504;
- request and response bodies stream both ways (large upload hashed, first chunk arrives early);
- a host's own refusal (route just removed) is retried elsewhere, even for a POST; a component's 404 is not;
- HEAD keeps the Content-Length, 204 has no body; Expect: 100-continue is answered by the gateway;
- X-Forwarded-For/Proto/Host are set, the Host header reaches the host, gzip passes through undecoded.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiohttp import web

from wasmfleet.gateway import proxying, routes
from wasmfleet.gateway.settings import GatewaySettings

pytestmark = pytest.mark.timeout(60)


@dataclass
class Upstream:
    name: str
    port: int
    runner: web.AppRunner
    seen: list[str] = field(default_factory=list)
    seen_headers: list[dict[str, str]] = field(default_factory=list)

    @property
    def backend(self) -> routes.Backend:
        return routes.Backend("127.0.0.1", self.port, host_id=self.name, host_name=self.name)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def start_upstream(name: str, handler: Handler | None = None) -> Upstream:
    up = Upstream(name, 0, None)  # type: ignore[arg-type]

    async def default(request: web.Request) -> web.StreamResponse:
        up.seen.append(request.path)
        up.seen_headers.append(dict(request.headers))
        if request.path == "/echo":
            body = await request.read()
            return web.json_response(
                {
                    "name": name,
                    "sha": hashlib.sha256(body).hexdigest(),
                    "headers": dict(request.headers),
                }
            )
        return web.Response(text=name)

    async def wrapped(request: web.Request) -> web.StreamResponse:
        if handler is not None:
            up.seen.append(request.path)
            return await handler(request)
        return await default(request)

    app = web.Application(client_max_size=0)
    app.router.add_route("*", "/{tail:.*}", wrapped)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    up.runner = runner
    up.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return up


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def upstreams() -> AsyncIterator[list[Upstream]]:
    ups = [await start_upstream(f"up{i}") for i in range(3)]
    yield ups
    for up in ups:
        await up.runner.cleanup()


async def start_gateway(
    backends: dict[str, list[routes.Backend]], **settings: float
) -> tuple[proxying.Proxy, web.AppRunner, str]:
    proxy = proxying.Proxy(GatewaySettings(port=0, **settings))  # type: ignore[arg-type]
    proxy.set_table(routes.RoutingTable(routes={k: tuple(v) for k, v in backends.items()}))
    runner, port = await proxying.serve(proxy, "127.0.0.1", 0)
    return proxy, runner, f"http://127.0.0.1:{port}"


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        yield session


async def test_unknown_host_is_503_naming_it_and_health_follows_sync(
    client: aiohttp.ClientSession,
) -> None:
    proxy = proxying.Proxy(GatewaySettings(port=0))
    runner, port = await proxying.serve(proxy, "127.0.0.1", 0)
    base = f"http://127.0.0.1:{port}"
    try:
        async with client.get(base + "/healthz") as r:
            assert r.status == 503
        proxy.set_table(routes.RoutingTable())
        async with client.get(base + "/healthz") as r:
            assert r.status == 200
        async with client.get(base + "/x", headers={"Host": "nope.example:8000"}) as r:
            assert r.status == 503
            assert "nope.example" in await r.text()
        # No Host header at all: only a raw socket can send that.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /x HTTP/1.0\r\n\r\n")
        await writer.drain()
        raw = await reader.read()
        writer.close()
        assert raw.startswith(b"HTTP/1.0 400") or raw.startswith(b"HTTP/1.1 400")
        assert b"no Host header" in raw
    finally:
        await runner.cleanup()


async def test_sequential_requests_visit_every_replica_and_metrics_count_them(
    upstreams: list[Upstream], client: aiohttp.ClientSession
) -> None:
    _, runner, base = await start_gateway({"app.test": [u.backend for u in upstreams]})
    try:
        answers = []
        for _ in range(9):
            async with client.get(base + "/", headers={"Host": "App.Test:8000"}) as r:
                assert r.status == 200
                answers.append(await r.text())
                assert r.headers["X-Wasmfleet-Host"] == answers[-1]
        assert sorted(set(answers)) == ["up0", "up1", "up2"]
        assert all(answers.count(n) == 3 for n in ("up0", "up1", "up2"))
        async with client.get(base + "/metrics") as r:
            text = await r.text()
        assert 'wasmfleet_gateway_requests_total{code="200",route="app.test"} 9.0' in text
        assert 'wasmfleet_gateway_route_backends{route="app.test"} 3.0' in text
    finally:
        await runner.cleanup()


async def test_a_replica_busy_with_a_slow_request_gets_fewer_new_ones(
    client: aiohttp.ClientSession,
) -> None:
    release = asyncio.Event()

    async def slow(request: web.Request) -> web.StreamResponse:
        if request.path == "/slow":
            await release.wait()
        return web.Response(text="slowhost")

    slow_up = await start_upstream("slow", slow)
    fast_up = await start_upstream("fast")
    _, runner, base = await start_gateway({"a.test": [slow_up.backend, fast_up.backend]})
    try:
        hdr = {"Host": "a.test"}
        # Two slow requests: with LOR the second one goes to the other replica, so make sure one of them
        # lands on the slow host and stays outstanding there.
        pending = [asyncio.create_task(client.get(base + "/slow", headers=hdr)) for _ in range(2)]
        for _ in range(100):
            if slow_up.seen:
                break
            await asyncio.sleep(0.01)
        assert slow_up.seen == ["/slow"]
        names = []
        for _ in range(6):
            async with client.get(base + "/", headers=hdr) as r:
                names.append(await r.text())
        assert names == ["fast"] * 6
        release.set()
        for task in pending:
            (await task).release()
    finally:
        release.set()
        await runner.cleanup()
        await slow_up.runner.cleanup()
        await fast_up.runner.cleanup()


async def test_refused_connection_is_retried_elsewhere_for_get_and_post(
    upstreams: list[Upstream], client: aiohttp.ClientSession
) -> None:
    dead = routes.Backend("127.0.0.1", free_port(), host_id="dead")
    proxy, runner, base = await start_gateway({"r.test": [dead, upstreams[0].backend]})
    try:
        for _ in range(4):
            async with client.get(base + "/", headers={"Host": "r.test"}) as r:
                assert r.status == 200
                assert await r.text() == "up0"
        payload = b"x" * 100_000
        for _ in range(2):
            proxy.balancer.restore(dead)  # make the dead one a candidate again
            async with client.post(base + "/echo", data=payload, headers={"Host": "r.test"}) as r:
                assert r.status == 200
                body = await r.json()
                assert body["sha"] == hashlib.sha256(payload).hexdigest()
        async with client.get(base + "/metrics") as r:
            assert 'wasmfleet_gateway_upstream_retries_total{route="r.test"}' in await r.text()
    finally:
        await runner.cleanup()


async def test_post_dropped_after_sending_is_not_replayed(client: aiohttp.ClientSession) -> None:
    async def drop(request: web.Request) -> web.StreamResponse:
        await request.read()
        assert request.transport is not None
        request.transport.close()
        raise ConnectionResetError

    dropper = await start_upstream("dropper", drop)
    other = await start_upstream("other")
    proxy, runner, base = await start_gateway({"d.test": [dropper.backend, other.backend]})
    try:
        # Force the choice: the other replica looks busy.
        proxy.balancer.acquire(other.backend)
        async with client.post(base + "/p", data=b"once", headers={"Host": "d.test"}) as r:
            assert r.status == 502
            assert "bad gateway" in await r.text()
        assert dropper.seen == ["/p"]
        assert other.seen == []
    finally:
        await runner.cleanup()
        await dropper.runner.cleanup()
        await other.runner.cleanup()


async def test_all_replicas_dead_is_502_and_silent_replica_is_504(client: aiohttp.ClientSession) -> None:
    dead = [routes.Backend("127.0.0.1", free_port()) for _ in range(2)]

    wake = asyncio.Event()

    async def silent(request: web.Request) -> web.StreamResponse:
        await wake.wait()
        return web.Response(text="late")

    mute = await start_upstream("mute", silent)
    _, runner, base = await start_gateway(
        {"dead.test": dead, "mute.test": [mute.backend]}, response_timeout_s=0.3
    )
    try:
        async with client.get(base + "/", headers={"Host": "dead.test"}) as r:
            assert r.status == 502
            assert "dead.test" in await r.text()
        async with client.get(base + "/", headers={"Host": "mute.test"}) as r:
            assert r.status == 504
            assert "gateway timeout" in await r.text()
    finally:
        wake.set()
        await runner.cleanup()
        await mute.runner.cleanup()


async def test_bodies_stream_both_ways(client: aiohttp.ClientSession) -> None:
    go_on = asyncio.Event()

    async def stream(request: web.Request) -> web.StreamResponse:
        if request.path == "/upload":
            digest = hashlib.sha256()
            async for chunk in request.content.iter_chunked(65536):
                digest.update(chunk)
            return web.Response(text=digest.hexdigest())
        response = web.StreamResponse()
        await response.prepare(request)
        await response.write(b"first\n")
        await go_on.wait()
        await response.write(b"second\n")
        await response.write_eof()
        return response

    up = await start_upstream("stream", stream)
    _, runner, base = await start_gateway({"s.test": [up.backend]})
    try:
        block = bytes(range(256)) * 4096  # 1 MiB
        expected = hashlib.sha256()

        async def body() -> AsyncIterator[bytes]:
            for _ in range(8):
                expected.update(block)
                yield block

        async with client.post(base + "/upload", data=body(), headers={"Host": "s.test"}) as r:
            assert r.status == 200
            assert await r.text() == expected.hexdigest()
        async with client.get(base + "/stream", headers={"Host": "s.test"}) as r:
            assert r.status == 200
            first = await asyncio.wait_for(r.content.readline(), 2)
            assert first == b"first\n"
            go_on.set()
            assert await r.content.read() == b"second\n"
    finally:
        go_on.set()
        await runner.cleanup()
        await up.runner.cleanup()


async def test_forwarded_headers_host_and_encoding_pass_through(client: aiohttp.ClientSession) -> None:
    async def show(request: web.Request) -> web.StreamResponse:
        if request.path == "/gz":
            return web.Response(body=gzip.compress(b"zipped"), headers={"Content-Encoding": "gzip"})
        return web.json_response(dict(request.headers))

    up = await start_upstream("show", show)
    _, runner, base = await start_gateway({"h.test": [up.backend]})
    try:
        hdr = {"Host": "h.test:8000", "X-Forwarded-For": "10.0.0.1", "Accept-Encoding": "gzip"}
        async with client.get(base + "/", headers=hdr) as r:
            seen = await r.json()
        assert seen["Host"] == "h.test:8000"
        assert seen["X-Forwarded-For"] == "10.0.0.1, 127.0.0.1"
        assert seen["X-Forwarded-Proto"] == "http"
        assert seen["X-Forwarded-Host"] == "h.test:8000"
        async with client.get(base + "/gz", headers=hdr) as r:
            assert r.headers["Content-Encoding"] == "gzip"
            assert gzip.decompress(await r.read()) == b"zipped"
    finally:
        await runner.cleanup()
        await up.runner.cleanup()


async def test_a_hosts_own_refusal_is_retried_but_a_components_404_is_not(client: aiohttp.ClientSession) -> None:
    async def unrouted(request: web.Request) -> web.StreamResponse:
        # What a wasmfleet host answers when the route was just removed (host/runtime/serving.py).
        await request.read()
        return web.Response(status=404, text=f"no workload serves host {request.host!r}\n",
                            headers={"X-Wasmfleet-No-Route": "1"})

    async def app_404(request: web.Request) -> web.StreamResponse:
        # Same words as the host's refusal, but from a component (no header): passed on, not retried.
        return web.Response(status=404, text="no workload serves host, says the app\n")

    gone = await start_upstream("gone", unrouted)
    live = await start_upstream("live")
    page = await start_upstream("page", app_404)
    proxy, runner, base = await start_gateway({"u.test": [gone.backend, live.backend], "p.test": [page.backend]})
    try:
        for _ in range(2):
            proxy.balancer.acquire(live.backend)  # make the refusing host the first choice
            async with client.post(base + "/echo", data=b"small body", headers={"Host": "u.test"}) as r:
                proxy.balancer.release(live.backend)
                assert r.status == 200
                assert (await r.json())["sha"] == hashlib.sha256(b"small body").hexdigest()
        assert len(gone.seen) == 2
        async with client.get(base + "/x", headers={"Host": "p.test"}) as r:
            assert r.status == 404
            assert await r.text() == "no workload serves host, says the app\n"
        assert page.seen == ["/x"]
    finally:
        await runner.cleanup()
        for up in (gone, live, page):
            await up.runner.cleanup()


async def test_head_and_no_content_responses_pass_through(client: aiohttp.ClientSession) -> None:
    async def answer(request: web.Request) -> web.StreamResponse:
        if request.path == "/empty":
            return web.Response(status=204)
        return web.Response(text="twelve bytes")

    up = await start_upstream("plain", answer)
    _, runner, base = await start_gateway({"e.test": [up.backend]})
    try:
        async with client.head(base + "/", headers={"Host": "e.test"}) as r:
            assert r.status == 200
            assert r.headers["Content-Length"] == "12"
            assert await r.read() == b""
        async with client.get(base + "/empty", headers={"Host": "e.test"}) as r:
            assert r.status == 204
            assert await r.read() == b""
        async with client.get(base + "/", headers={"Host": "e.test"}) as r:  # the connection is still sane
            assert await r.text() == "twelve bytes"
    finally:
        await runner.cleanup()
        await up.runner.cleanup()


async def test_expect_100_continue_is_answered_by_the_gateway(upstreams: list[Upstream]) -> None:
    _, runner, base = await start_gateway({"x.test": [upstreams[0].backend]})
    port = int(base.rsplit(":", 1)[1])
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /echo HTTP/1.1\r\nHost: x.test\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
        await writer.drain()
        assert await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2) == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(b"ping")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 200")
        writer.close()
        assert "Expect" not in upstreams[0].seen_headers[-1]
    finally:
        await runner.cleanup()
