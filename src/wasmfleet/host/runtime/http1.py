"""A small HTTP/1.1 server protocol for asyncio: keep-alive, chunked bodies both ways, Host routing.

Parsing is done by hand on bytes (request line + headers), which keeps the per-request cost far
below a general framework's; the guest call itself runs on the wasm thread (see `serving`). One
request at a time per connection (pipelined requests wait in the buffer).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Protocol

from wasmfleet.bus import http_routing
from wasmfleet.host.wasi import io

MAX_HEAD = 64 * 1024
LINGER_S = 2.0  # how long a half-closed connection keeps discarding input before it is closed
WRITE_HIGH_WATER = 4 << 20
"""Response bytes buffered for a slow client before the guest writing them waits (`drained`);
resumed below a quarter of it. Large, so ordinary responses never wait."""
REASONS = {
    200: "OK", 201: "Created", 202: "Accepted", 204: "No Content", 301: "Moved Permanently",
    302: "Found", 304: "Not Modified", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
    404: "Not Found", 405: "Method Not Allowed", 413: "Content Too Large", 418: "I'm a teapot",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable",
    504: "Gateway Timeout",
}

NO_ROUTE_HEADER = http_routing.NO_ROUTE_HEADER.lower()
"""Set on the host's own refusals (no route, draining); the gateway retries those elsewhere (header
names go out in lower case, as every header this module writes)."""


class Request:
    __slots__ = ("authority", "body", "headers", "host", "keep_alive", "method", "target")

    def __init__(self, method: str, target: str, headers: list[tuple[str, bytes]], host: str | None,
                 keep_alive: bool, body: io.Channel) -> None:
        self.method = method
        self.target = target
        self.headers = headers
        self.host = host
        self.authority = host
        self.keep_alive = keep_alive
        self.body = body


class Dispatcher(Protocol):
    def dispatch(self, conn: Connection, request: Request) -> None: ...


def _reason(status: int) -> str:
    return REASONS.get(status, "Status")


class Connection(asyncio.Protocol):
    """One client connection. `dispatch` is called once per request head; the response arrives
    later through `send` (possibly in several parts) and ends with `end` or `abort`."""

    def __init__(self, dispatcher: Dispatcher, max_body: int, on_close: Callable[[Connection], None]) -> None:
        self.dispatcher = dispatcher
        self.max_body = max_body
        self.on_close = on_close
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.busy = False
        self.body: io.Channel | None = None
        self.body_remaining = 0
        self.chunked = False
        self.chunk_phase = "size"
        self.chunk_buf = b""
        self.chunk_left = 0
        self.chunked_total = 0
        self.loop: asyncio.AbstractEventLoop | None = None
        self.keep_alive = True
        self.response_chunked = False
        self.head_sent = False
        self.is_head = False
        self.closing = False
        self.lingering = False
        """Half-closed after a final response: input is discarded until the client closes or LINGER_S."""
        self.body_waiter: Callable[[bool], None] | None = None
        """Called once the current request's body has fully arrived (True) or never will (False)."""
        self.last_active = time.monotonic()
        self.drained = threading.Event()
        """Clear while the transport holds more than WRITE_HIGH_WATER unsent bytes: a guest on the
        wasm thread waits on it before producing more (see serving.ThreadSink)."""
        self.drained.set()

    # --- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.loop = asyncio.get_running_loop()
        transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)

    def pause_writing(self) -> None:
        self.drained.clear()

    def resume_writing(self) -> None:
        self.drained.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self.drained.set()
        if self.body is not None and not self.body.eof:
            self.body.close("client disconnected")
        self._body_done(False)
        self.transport = None
        self.on_close(self)

    def data_received(self, data: bytes) -> None:
        self.last_active = time.monotonic()
        if self.lingering:
            return
        if self.body is not None and not self.body.eof:
            data = self._feed_body(data)
            if not data:
                return
        if self.closing:
            return  # the connection ends after this response: what follows is never parsed
        self.buf += data
        self._process()

    # --- request side -----------------------------------------------------------------------

    def _process(self) -> None:
        while not self.busy and self.transport is not None and not self.closing:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buf) > MAX_HEAD:
                    self.simple(431, "request head too large\n", close=True)
                return
            head, self.buf = self.buf[:end], self.buf[end + 4 :]
            request = self._start_request(head)
            if request is None:
                return
            # Body bytes that came with the head go in before dispatch: a small POST is then
            # complete and can run inline.
            if self.buf and self.body is not None and not self.body.eof:
                rest, self.buf = self.buf, b""
                self.buf = self._feed_body(rest)
            self.dispatcher.dispatch(self, request)

    def _start_request(self, head: bytes) -> Request | None:
        lines = head.split(b"\r\n")
        try:
            method_b, target_b, version = lines[0].split(b" ")
            method, target = method_b.decode("ascii"), target_b.decode("latin-1")
        except (ValueError, UnicodeDecodeError):
            self.simple(400, "malformed request line\n", close=True)
            return None
        headers: list[tuple[str, bytes]] = []
        host: str | None = None
        if target.startswith(("http://", "https://")):
            # Absolute form (as sent to proxies): the authority stands in for a missing Host.
            authority, _, path = target.split("://", 1)[1].partition("/")
            target = "/" + path
            host = authority or None
        length = 0
        chunked = False
        expect_continue = False
        conn_hdr = b""
        for line in lines[1:]:
            name_b, sep, value = line.partition(b":")
            if not sep:
                self.simple(400, "malformed header line\n", close=True)
                return None
            name = name_b.decode("latin-1").strip().lower()
            value = value.strip()
            if name == "host":
                if host is None:  # an absolute-form target's authority takes precedence
                    host = value.decode("latin-1")
                continue
            if name == "content-length":
                try:
                    length = int(value)
                except ValueError:
                    self.simple(400, "bad content-length\n", close=True)
                    return None
                headers.append((name, value))
                continue
            if name == "transfer-encoding":
                chunked = b"chunked" in value.lower()
                continue
            if name == "connection":
                conn_hdr = value.lower()
                continue
            if name == "expect":
                # Clients (curl for bodies over 1 MB) wait for "100 Continue" before the body.
                expect_continue = value.lower() == b"100-continue"
                continue
            headers.append((name, value))
        self.keep_alive = (b"close" not in conn_hdr) if version == b"HTTP/1.1" else (b"keep-alive" in conn_hdr)
        if length > self.max_body:
            self.simple(413, "request body too large\n", close=True)
            return None
        body = io.Channel()
        self.chunked = chunked
        self.chunk_phase = "size"
        self.chunk_buf = b""
        self.chunked_total = 0
        self.body_remaining = length
        if not chunked and length == 0:
            body.close()
        self.body = body
        body.on_drain = self._resume_threadsafe
        if expect_continue and not body.eof and self.transport is not None:
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        self.busy = True
        self.head_sent = False
        self.is_head = method == "HEAD"
        return Request(method, target, headers, host, self.keep_alive, body)

    def wait_for_body(self, then: Callable[[bool], None]) -> bool:
        """Calls `then` once the current request's body has arrived, when it has a Content-Length
        of at most what the body channel buffers anyway (`io.Channel.HIGH_WATER`); returns False
        (and never calls it) for chunked or larger bodies, which stream."""
        body = self.body
        if body is None or body.eof or self.chunked or self.body_remaining > io.Channel.HIGH_WATER:
            return False
        self.body_waiter = then
        return True

    def _body_done(self, complete: bool) -> None:
        waiter, self.body_waiter = self.body_waiter, None
        if waiter is not None:
            waiter(complete)

    def _feed_body(self, data: bytes) -> bytes:
        """Feeds body bytes to the channel; returns what follows the body (next request)."""
        body = self.body
        assert body is not None
        if not self.chunked:
            take = data[: self.body_remaining]
            rest = data[self.body_remaining :]
            self.body_remaining -= len(take)
            if take and not body.feed(take) and self.transport is not None:
                self.transport.pause_reading()
            if self.body_remaining == 0:
                body.close()
                self._body_done(True)
            return rest
        return self._feed_chunked(data)

    def _feed_chunked(self, data: bytes) -> bytes:
        body = self.body
        assert body is not None
        buf = self.chunk_buf + data
        self.chunk_buf = b""
        while True:
            phase = self.chunk_phase
            if phase == "data":
                if not buf:
                    return b""
                take = buf[: self.chunk_left]
                buf = buf[len(take) :]
                self.chunk_left -= len(take)
                self.chunked_total += len(take)
                if self.chunked_total > self.max_body:
                    # Too large: the guest sees a failed body, the connection is not reused.
                    body.close("request body too large")
                    self.closing = True
                    return b""
                if not body.feed(take) and self.transport is not None:
                    self.transport.pause_reading()
                if self.chunk_left == 0:
                    self.chunk_phase = "crlf"
            elif phase == "crlf":
                if len(buf) < 2:
                    self.chunk_buf = buf
                    return b""
                buf = buf[2:]
                self.chunk_phase = "size"
            else:  # "size" or "trailer": line-oriented
                nl = buf.find(b"\r\n")
                if nl < 0:
                    self.chunk_buf = buf
                    return b""
                line, buf = buf[:nl], buf[nl + 2 :]
                if phase == "trailer":
                    if not line:
                        body.close()
                        self.chunk_phase = "size"
                        return buf
                    continue
                try:
                    size = int(line.split(b";")[0].strip(), 16)
                except ValueError:
                    body.close("bad chunk size")
                    self.closing = True
                    return b""
                if size == 0:
                    self.chunk_phase = "trailer"
                else:
                    self.chunk_left = size
                    self.chunk_phase = "data"

    def _resume_threadsafe(self) -> None:
        # Called on the wasm thread when the guest drained the body buffer.
        loop = self.loop
        if loop is not None:
            loop.call_soon_threadsafe(self._resume)

    def _resume(self) -> None:
        if self.transport is not None:
            self.transport.resume_reading()

    # --- response side ----------------------------------------------------------------------

    def send(self, head: tuple[int, list[tuple[str, bytes]]] | None, parts: list[bytes], finished: bool) -> None:
        t = self.transport
        if t is None:
            return
        out: list[bytes] = []
        if head is not None and not self.head_sent:
            status, headers = head
            has_length = any(k.lower() == "content-length" for k, _ in headers)
            lines = [f"HTTP/1.1 {status} {_reason(status)}\r\n".encode()]
            for k, v in headers:
                if k.lower() in ("connection", "transfer-encoding"):
                    continue
                lines.append(k.encode("latin-1") + b": " + v + b"\r\n")
            if has_length or self.is_head or status in (204, 304):
                self.response_chunked = False
            elif finished:
                # Whole response known: a content-length is cheaper for clients than chunks.
                lines.append(b"content-length: %d\r\n" % sum(len(p) for p in parts))
                self.response_chunked = False
            else:
                lines.append(b"transfer-encoding: chunked\r\n")
                self.response_chunked = True
            if not self.keep_alive:
                lines.append(b"connection: close\r\n")
            lines.append(b"\r\n")
            out.append(b"".join(lines))
            self.head_sent = True
        if not self.is_head:
            if self.response_chunked:
                for p in parts:
                    if p:
                        out.append(b"%x\r\n" % len(p))
                        out.append(p)
                        out.append(b"\r\n")
                if finished:
                    out.append(b"0\r\n\r\n")
            else:
                out.extend(parts)
        if out:
            t.write(b"".join(out))
        if finished:
            self._complete()

    def simple(self, status: int, text: str, close: bool = False, refusal: bool = False) -> None:
        """A response made by the host itself (errors), when nothing was sent yet.

        `refusal` marks the host turning the request away before any component saw it (no route,
        draining): the gateway may then safely retry it on another replica, whatever the method."""
        if close:
            self.keep_alive = False
        if self.head_sent:
            self.abort()
            return
        self.is_head = False
        body = text.encode()
        headers = [("content-type", b"text/plain; charset=utf-8")]
        if refusal:
            headers.append((NO_ROUTE_HEADER, b"1"))
        self.send((status, headers), [body], True)

    def abort(self) -> None:
        """Ends a response that cannot be completed (guest failed mid-body): close the socket."""
        if self.transport is not None:
            self.transport.close()
        self.busy = False

    def _complete(self) -> None:
        self.busy = False
        body = self.body
        if body is not None and not body.eof:
            # The guest did not read the whole body: the connection cannot be reused reliably.
            self.keep_alive = False
        self.body = None
        if not self.keep_alive or self.closing:
            self._close_lingering()
            return
        if self.buf:
            self._process()

    def _close_lingering(self) -> None:
        """Closes after a final response while the client may still be sending (a cut body).

        Closing a socket with unread input makes the kernel answer with RST, which can destroy the
        response before the client reads it. So: half-close (the client sees the response, then EOF),
        discard whatever still arrives, and close when the client does or after LINGER_S."""
        t = self.transport
        if t is None or self.lingering:
            return
        self.lingering = True
        self.buf = b""
        if not t.can_write_eof() or self.loop is None:
            t.close()
            return
        t.write_eof()  # sent once the pending response bytes are flushed
        t.resume_reading()
        self.loop.call_later(LINGER_S, t.close)

    def idle(self) -> bool:
        return not self.busy
