"""The gateway's HTTP/1.1 client against raw TCP servers that answer with hand-written bytes.

Checks:
- Content-Length, chunked (with extensions and trailers) and close-delimited bodies are read exactly;
- interim 100/103 responses are skipped; HEAD and 204 have no body;
- a connection is reused after a complete response, not after Connection: close;
- a pooled connection the server closed is detected (not reused), and a close during the exchange on a
  reused connection is reported as stale; malformed heads and short bodies are UpstreamBroken;
- silence beyond the response timeout is UpstreamTimeout, a refused connect is ConnectFailed;
- a streamed request body is sent chunked.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from wasmfleet.gateway import upstream

pytestmark = pytest.mark.timeout(30)

Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def serve(script: Script) -> tuple[asyncio.Server, int, list[int]]:
    accepted: list[int] = []

    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(1)
        try:
            await script(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass  # the test is over (or the client hung up): nothing to report from the server side
        finally:
            writer.close()

    server = await asyncio.start_server(on_client, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1], accepted


async def read_request(reader: asyncio.StreamReader) -> bytes:
    return await reader.readuntil(b"\r\n\r\n")


def respond(*responses: bytes, keep: bool = True) -> Script:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for raw in responses:
            await read_request(reader)
            writer.write(raw)
            await writer.drain()
        if keep:
            await reader.read()  # hold the connection open until the client closes it

    return script


@pytest.fixture
def pool() -> upstream.Pool:
    return upstream.Pool(connect_timeout_s=1, response_timeout_s=0.5)


async def get(pool: upstream.Pool, port: int, method: str = "GET") -> tuple[int, bytes]:
    resp = await pool.request("127.0.0.1", port, method, "/", [("Host", "x")], None)
    return resp.status, await resp.read()


async def test_framings_interim_responses_and_reuse(pool: upstream.Pool) -> None:
    server, port, accepted = await serve(respond(
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nX-T: 1\r\n\r\n",
        b"HTTP/1.1 204 No Content\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end",
        keep=False,
    ))
    async with server:
        assert await get(pool, port) == (200, b"hello")
        assert await get(pool, port) == (200, b"abcde")
        assert await get(pool, port) == (204, b"")
        assert await get(pool, port, "HEAD") == (200, b"")
        assert accepted == [1]  # all four on one kept-alive connection
        status, body = await get(pool, port)
        assert (status, body) == (200, b"until the end")
    pool.close()


async def test_pooled_connection_closed_by_server_is_not_reused(pool: upstream.Pool) -> None:
    server, port, accepted = await serve(respond(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", keep=False))
    async with server:
        assert await get(pool, port) == (200, b"ok")
        await asyncio.sleep(0.1)  # the server closed its side meanwhile
        assert await get(pool, port) == (200, b"ok")
        assert len(accepted) == 2
    pool.close()


async def test_close_after_request_on_reused_connection_is_stale(pool: upstream.Pool) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        await read_request(reader)  # second request: hang up without answering

    server, port, _ = await serve(script)
    async with server:
        assert await get(pool, port) == (200, b"ok")
        with pytest.raises(upstream.StaleConnection):
            await get(pool, port)
    pool.close()


@pytest.mark.parametrize("raw", [
    b"garbage\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nno-colon-here\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
])
async def test_malformed_or_short_responses_are_broken(pool: upstream.Pool, raw: bytes) -> None:
    server, port, _ = await serve(respond(raw, keep=False))
    async with server:
        with pytest.raises(upstream.UpstreamBroken):
            await get(pool, port)
    pool.close()


async def test_silence_times_out_and_refusal_is_connect_failed(pool: upstream.Pool) -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()

    server, port, _ = await serve(silent)
    async with server:
        with pytest.raises(upstream.UpstreamTimeout):
            await get(pool, port)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    with pytest.raises(upstream.ConnectFailed):
        await get(pool, closed_port)
    pool.close()


async def test_streamed_request_body_is_sent_chunked(pool: upstream.Pool) -> None:
    seen: list[bytes] = []

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await read_request(reader))
        seen.append(await reader.readuntil(b"0\r\n\r\n"))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()

    async def body() -> AsyncIterator[bytes]:
        yield b"abc"
        yield b"defgh"

    server, port, _ = await serve(script)
    async with server:
        resp = await pool.request("127.0.0.1", port, "POST", "/up", [("Host", "x")], body())
        assert resp.status == 200
    assert seen[0].startswith(b"POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n")
    assert seen[1] == b"3\r\nabc\r\n5\r\ndefgh\r\n0\r\n\r\n"
    pool.close()
