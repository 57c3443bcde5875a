"""A small HTTP/1.1 client for talking to hosts: pooled keep-alive connections, streaming both ways.

Why not aiohttp's client: proxying one request through it cost ~500 µs of CPU on the development VM, more
than the host spends running the component; this client, which does only what a proxy needs (no cookies,
redirects, decompression, tracing, proxies or TLS), costs about a third of that. aiohttp still serves the
downstream side.

What it does:
- one idle-connection pool per (address, port); a connection goes back to the pool only after its response
  body was read to the end and neither side asked to close;
- request bodies are sent with Content-Length (bytes) or chunked (a stream);
- response bodies are framed by Content-Length, chunked encoding, or connection close; 1xx interim
  responses are skipped; HEAD/204/304 responses have no body;
- failures are typed so the caller can decide whether a retry is safe: `ConnectFailed` (nothing was sent),
  `StaleConnection` (a pooled connection was found closed before any response byte), `UpstreamTimeout`
  (no response head, or a silent body, within the response timeout), `UpstreamBroken` (anything else).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass

from multidict import CIMultiDict

MAX_HEAD = 64 * 1024


class UpstreamError(Exception):
    """Base of the client's failures; ``str()`` is a short reason for logs and 502 bodies."""


class ConnectFailed(UpstreamError):
    """The TCP connection could not be opened (refused, unreachable, connect timeout): nothing was sent."""


class StaleConnection(UpstreamError):
    """A reused keep-alive connection turned out closed before any byte of the response arrived."""


class UpstreamTimeout(UpstreamError):
    """The host sent nothing for longer than the response timeout."""


class UpstreamBroken(UpstreamError):
    """The exchange failed after the request was (maybe partly) sent, or the response was malformed."""


@dataclass
class _Conn:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    def usable(self) -> bool:
        return not self.writer.is_closing() and not self.reader.at_eof()

    def close(self) -> None:
        self.writer.close()


class Response:
    """A response head plus its body, read on demand. Call `release()` (or read to the end) exactly once."""

    def __init__(
        self, pool: Pool, key: tuple[str, int], conn: _Conn, status: int, reason: str,
        headers: CIMultiDict[str], framing: str, length: int | None, keep_alive: bool,
    ) -> None:
        self.status = status
        self.reason = reason
        self.headers = headers
        self.content_length = length if framing == "length" else None
        self._pool = pool
        self._key = key
        self._conn: _Conn | None = conn
        self._framing = framing  # "none" | "length" | "chunked" | "close"
        self._remaining = length or 0
        self._keep_alive = keep_alive
        self._done = framing == "none"

    async def read(self) -> bytes:
        return b"".join([chunk async for chunk in self.iter_chunks(1 << 20)])

    async def iter_chunks(self, size: int) -> AsyncIterator[bytes]:
        """The body in pieces of at most ``size`` bytes; UpstreamTimeout/UpstreamBroken on failure."""
        conn = self._conn
        if conn is None or self._done:
            return
        reader = conn.reader
        try:
            if self._framing == "length":
                while self._remaining:
                    async with asyncio.timeout(self._pool.response_timeout_s):
                        data = await reader.read(min(size, self._remaining))
                    if not data:
                        raise UpstreamBroken(f"body ended {self._remaining} bytes early")
                    self._remaining -= len(data)
                    yield data
            elif self._framing == "chunked":
                while True:
                    async with asyncio.timeout(self._pool.response_timeout_s):
                        line = await reader.readuntil(b"\r\n")
                    try:
                        chunk_len = int(line.split(b";", 1)[0].strip(), 16)
                    except ValueError:
                        raise UpstreamBroken(f"bad chunk size line {line[:40]!r}") from None
                    if chunk_len == 0:
                        async with asyncio.timeout(self._pool.response_timeout_s):
                            while (await reader.readuntil(b"\r\n")) != b"\r\n":
                                pass  # trailers are dropped (aiohttp's server cannot send them)
                        break
                    left = chunk_len
                    while left:
                        async with asyncio.timeout(self._pool.response_timeout_s):
                            data = await reader.read(min(size, left))
                        if not data:
                            raise UpstreamBroken("body ended inside a chunk")
                        left -= len(data)
                        yield data
                    async with asyncio.timeout(self._pool.response_timeout_s):
                        await reader.readexactly(2)
            else:  # "close": the body runs to the end of the connection
                self._keep_alive = False
                while True:
                    async with asyncio.timeout(self._pool.response_timeout_s):
                        data = await reader.read(size)
                    if not data:
                        break
                    yield data
        except TimeoutError:
            self.close()
            raise UpstreamTimeout(f"silent for {self._pool.response_timeout_s:g} s in the body") from None
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            self.close()
            raise UpstreamBroken(f"body broke off: {exc or type(exc).__name__}") from exc
        except UpstreamBroken:  # a short or malformed body found above: the connection is unusable
            self.close()
            raise
        self._done = True
        self.release()

    def release(self) -> None:
        """Return the connection to the pool when the body was fully read, else close it."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if self._done and self._keep_alive:
            self._pool._put(self._key, conn)
        else:
            conn.close()

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


class Pool:
    def __init__(self, connect_timeout_s: float, response_timeout_s: float, max_idle_per_backend: int = 64) -> None:
        self.connect_timeout_s = connect_timeout_s
        self.response_timeout_s = response_timeout_s
        self._max_idle = max_idle_per_backend
        self._idle: dict[tuple[str, int], collections.deque[_Conn]] = {}

    def _put(self, key: tuple[str, int], conn: _Conn) -> None:
        idle = self._idle.setdefault(key, collections.deque())
        if len(idle) >= self._max_idle or not conn.usable():
            conn.close()
        else:
            idle.append(conn)

    def _take(self, key: tuple[str, int]) -> _Conn | None:
        idle = self._idle.get(key)
        while idle:
            conn = idle.pop()
            if conn.usable():
                return conn
            conn.close()
        return None

    async def _connect(self, address: str, port: int) -> _Conn:
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                reader, writer = await asyncio.open_connection(address.strip("[]"), port, limit=MAX_HEAD)
        except TimeoutError:
            raise ConnectFailed(f"connect timed out after {self.connect_timeout_s:g} s") from None
        except OSError as exc:
            raise ConnectFailed(exc.strerror or str(exc) or type(exc).__name__) from exc
        return _Conn(reader, writer)

    async def request(
        self,
        address: str,
        port: int,
        method: str,
        target: str,
        headers: Iterable[tuple[str, str]],
        body: bytes | AsyncIterator[bytes] | None,
    ) -> Response:
        """Send one request and read the response head. The body is then read through the Response."""
        key = (address, port)
        conn = self._take(key)
        reused = conn is not None
        if conn is None:
            conn = await self._connect(address, port)
        head = [f"{method} {target} HTTP/1.1\r\n"]
        head += [f"{name}: {value}\r\n" for name, value in headers]
        if isinstance(body, bytes):
            head.append(f"Content-Length: {len(body)}\r\n\r\n")
        elif body is not None:
            head.append("Transfer-Encoding: chunked\r\n\r\n")
        else:
            head.append("\r\n")
        sent_any = False
        try:
            conn.writer.write("".join(head).encode("latin-1"))
            if isinstance(body, bytes):
                if body:
                    conn.writer.write(body)
            elif body is not None:
                async for chunk in body:
                    if chunk:
                        sent_any = True
                        conn.writer.write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
                        await conn.writer.drain()
                conn.writer.write(b"0\r\n\r\n")
            await conn.writer.drain()
            return await self._read_head(key, conn, method)
        except StaleConnection:
            conn.close()
            raise
        except UpstreamTimeout:
            conn.close()
            raise
        except (OSError, asyncio.IncompleteReadError) as exc:
            conn.close()
            if reused and not sent_any and (not isinstance(exc, asyncio.IncompleteReadError) or not exc.partial):
                raise StaleConnection(f"pooled connection closed: {exc or type(exc).__name__}") from exc
            raise UpstreamBroken(f"connection lost: {exc or type(exc).__name__}") from exc
        except UnicodeEncodeError as exc:
            conn.close()
            raise UpstreamBroken(f"request head not encodable: {exc}") from exc

    async def _read_head(self, key: tuple[str, int], conn: _Conn, method: str) -> Response:
        while True:
            try:
                async with asyncio.timeout(self.response_timeout_s):
                    raw = await conn.reader.readuntil(b"\r\n\r\n")
            except TimeoutError:
                raise UpstreamTimeout(f"no response within {self.response_timeout_s:g} s") from None
            except asyncio.LimitOverrunError as exc:
                conn.close()
                raise UpstreamBroken("response head too large") from exc
            lines = raw[:-4].decode("latin-1").split("\r\n")
            parts = lines[0].split(" ", 2)
            if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
                conn.close()
                raise UpstreamBroken(f"malformed status line {lines[0][:60]!r}")
            status = int(parts[1])
            if 100 <= status < 200 and status != 101:
                continue  # interim response (100 Continue, 103 Early Hints): the real one follows
            headers: CIMultiDict[str] = CIMultiDict()
            for line in lines[1:]:
                name, sep, value = line.partition(":")
                if not sep or not name or name != name.strip():
                    conn.close()
                    raise UpstreamBroken(f"malformed header line {line[:60]!r}")
                headers.add(name, value.strip())
            break
        keep_alive = parts[0] == "HTTP/1.1" and "close" not in headers.get("Connection", "").lower()
        length: int | None = None
        if method == "HEAD" or status in (204, 304):
            framing = "none"
        elif "chunked" in headers.get("Transfer-Encoding", "").lower():
            framing = "chunked"
        elif "Content-Length" in headers:
            try:
                length = int(headers["Content-Length"])
            except ValueError:
                conn.close()
                raise UpstreamBroken(f"bad Content-Length {headers['Content-Length']!r}") from None
            framing = "length" if length > 0 else "none"
        else:
            framing, keep_alive = "close", False
        response = Response(self, key, conn, status, parts[2] if len(parts) > 2 else "", headers, framing,
                            length, keep_alive)
        if framing == "none":
            response.release()
        return response

    def close(self) -> None:
        for idle in self._idle.values():
            while idle:
                with contextlib.suppress(Exception):
                    idle.pop().close()
        self._idle.clear()
