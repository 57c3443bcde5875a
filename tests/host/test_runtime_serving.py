"""WasmServer serving the hand-written WAT guest over real HTTP (one process).

Checks: GET body and headers; status codes other than 200; request headers reach the guest (and
come back); a 1 MB POST echoed byte-exact with Content-Length and with chunked encoding;
keep-alive reuses one connection; 400 without Host; 404 for an unknown host; Host routing with
the port stripped; "*" catch-all; several workloads on one host are balanced; unroute stops
serving; route() replaces a workload's previous route; a fresh instance per request by default;
outgoing HTTP works only with the outgoing-handler grant (else 500) and to allowed hosts (else 502);
absolute-form request targets route by their authority; a chunked body over the size limit is cut
(the guest sees a failed stream) and the server keeps serving.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
from pathlib import Path

import aiohttp
from runtime_harness import host_request, make_spec, raw_request

from wasmfleet.host.runtime import specs
from wasmfleet.host.runtime.server import WasmServer


def url(server: WasmServer, path: str = "/") -> str:
    return f"http://127.0.0.1:{server.port}{path}"


async def test_get_returns_the_guest_body_and_headers(server: WasmServer, hello_wat: Path) -> None:
    await server.route("w1", ["*"], make_spec(hello_wat))
    async with aiohttp.ClientSession() as s, s.get(url(server)) as r:
        assert r.status == 200
        assert await r.text() == "hello from wat\n"
        assert r.headers["content-type"] == "text/plain"
        assert r.headers["x-guest"] == "wat"


async def test_guest_status_codes_and_custom_headers_pass_through(server: WasmServer, hello_wat: Path) -> None:
    await server.route("w1", ["*"], make_spec(hello_wat))
    async with aiohttp.ClientSession() as s, s.get(url(server, "/status")) as r:
        assert r.status == 201
        assert r.headers["x-status"] == "created"


async def test_request_headers_reach_the_guest(server: WasmServer, hello_wat: Path) -> None:
    await server.route("w1", ["*"], make_spec(hello_wat))
    async with aiohttp.ClientSession() as s, s.get(url(server, "/headers"), headers={"X-Foo": "bar baz"}) as r:
        assert r.status == 200
        assert r.headers["x-foo"] == "bar baz"


async def test_one_megabyte_post_is_echoed_byte_exact(server: WasmServer, hello_wat: Path) -> None:
    await server.route("w1", ["*"], make_spec(hello_wat))
    payload = os.urandom(1 << 20)
    async with aiohttp.ClientSession() as s:
        async with s.post(url(server, "/echo"), data=payload) as r:
            assert r.status == 200
            assert await r.read() == payload

        async def chunks():  # type: ignore[no-untyped-def]
            for i in range(0, len(payload), 100_000):
                yield payload[i : i + 100_000]
                await asyncio.sleep(0)

        async with s.post(url(server, "/echo"), data=chunks()) as r:
            assert r.status == 200
            assert await r.read() == payload


async def test_keep_alive_serves_many_requests_on_one_connection(server: WasmServer, hello_wat: Path) -> None:
    await server.route("w1", ["*"], make_spec(hello_wat))
    conn = aiohttp.TCPConnector(limit=1)
    async with aiohttp.ClientSession(connector=conn) as s:
        for _ in range(20):
            async with s.get(url(server)) as r:
                assert await r.text() == "hello from wat\n"
    stats = server.stats()["serving"]
    assert stats["workloads"]["w1"]["requests"] == 20
    # Fresh instance per request by default (plus the warm-up instantiation at route time).
    assert stats["workloads"]["w1"]["instantiations"] == 20 + 1


async def test_missing_host_is_400_and_unknown_host_is_404(server: WasmServer, hello_wat: Path) -> None:
    await server.route("w1", ["hello.test"], make_spec(hello_wat))
    status, _ = await raw_request(server.port, b"GET / HTTP/1.0\r\n\r\n")
    assert status == 400
    status, body = await raw_request(server.port, host_request("other.test"))
    assert status == 404
    assert b"other.test" in body
    async with aiohttp.ClientSession() as s, s.get(url(server), headers={"Host": "other.test"}) as r:
        assert r.status == 404
        assert r.headers.get("X-Wasmfleet-No-Route") == "1"  # the host's refusal, marked for the gateway
    status, body = await raw_request(
server.port, host_request("Hello.Test:8080"))
    assert status == 200
    assert body == b"hello from wat\n"


async def test_workloads_sharing_a_hostname_are_balanced_and_unroute_stops_serving(
    server: WasmServer, hello_wat: Path
) -> None:
    await server.route("a", ["shared.test"], make_spec(hello_wat, "a"))
    await server.route("b", ["shared.test"], make_spec(hello_wat, "b"))
    for _ in range(10):
        status, _ = await raw_request(server.port, host_request("shared.test"))
        assert status == 200
    per = server.stats()["serving"]["workloads"]
    assert per["a"]["requests"] == 5 and per["b"]["requests"] == 5
    await server.unroute("a")
    await server.unroute("b")
    status, _ = await raw_request(server.port, host_request("shared.test"))
    assert status == 404


async def test_route_replaces_the_previous_hostnames(server: WasmServer, hello_wat: Path) -> None:
    await server.route("w1", ["one.test"], make_spec(hello_wat))
    await server.route("w1", ["two.test"], make_spec(hello_wat))
    one, _ = await raw_request(server.port, host_request("one.test"))
    two, _ = await raw_request(server.port, host_request("two.test"))
    assert (one, two) == (404, 200)
    assert server.routes() == {"w1": ["two.test"]}


async def test_outgoing_http_needs_a_grant_and_an_allowed_host(
    server: WasmServer, hello_wat: Path, upstream: int
) -> None:
    grant = (specs.Grant("wasi", "http", ("outgoing-handler",)),)
    await server.route("ok", ["ok.test"], make_spec(hello_wat, "ok", grants=grant, allowed_hosts=("127.0.0.1",)))
    await server.route("nogrant", ["nogrant.test"], make_spec(hello_wat, "nogrant", allowed_hosts=("127.0.0.1",)))
    await server.route("elsewhere", ["elsewhere.test"],
                       make_spec(hello_wat, "elsewhere", grants=grant, allowed_hosts=("*.example.com",)))

    def fetch(host: str) -> bytes:
        return (f"GET /out HTTP/1.1\r\nHost: {host}\r\nX-Target: 127.0.0.1:{upstream}\r\n"
                "Connection: close\r\n\r\n").encode()

    assert await raw_request(server.port, fetch("ok.test")) == (200, b"from upstream")
    status, body = await raw_request(server.port, fetch("nogrant.test"))
    assert status == 500 and b"not granted" in body
    assert (await raw_request(server.port, fetch("elsewhere.test")))[0] == 502


async def test_absolute_form_targets_and_oversized_chunked_bodies(settings: specs.RuntimeSettings,
                                                                  hello_wat: Path) -> None:
    small = dataclasses.replace(settings, max_request_body_mb=1)
    server = WasmServer("127.0.0.1", 0, workers=1, settings=small)
    await server.start(routes=[("w1", ["abs.test"], make_spec(hello_wat))])
    try:
        status, body = await raw_request(
            server.port, b"GET http://abs.test/ HTTP/1.1\r\nHost: ignored.test\r\nConnection: close\r\n\r\n"
        )
        assert (status, body) == (200, b"hello from wat\n")
        chunk = b"x" * 65536
        oversized = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(40)) + b"0\r\n\r\n"
        head = b"POST /echo HTTP/1.1\r\nHost: abs.test\r\nTransfer-Encoding: chunked\r\n\r\n"
        # The body is cut at the 1 MB limit: the guest sees its input end early (it echoes at most
        # what was accepted) and the connection is closed rather than reused.
        status, body = await raw_request(server.port, head + oversized)
        assert status == 200
        assert len(body) <= (1 << 20) + len(chunk)
        assert (await raw_request(server.port, host_request("abs.test")))[0] == 200
    finally:
        await server.stop(2)
