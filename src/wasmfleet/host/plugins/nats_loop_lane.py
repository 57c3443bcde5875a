"""NATS requests on an event loop, many in flight on one connection: the keyvalue backend's lane for
guests suspended on a serving loop (runtime.suspension).

Why not nats-py there: per request it makes a future, a token, a flush through its flusher task,
and on the way back parses headers into dicts and builds message and entry objects. On the 2-core
machine that cost, twice per guest request, was most of what separated a suspended guest from the
peer in bench/keyvalue_bench.py. This lane writes PUB/HPUB frames itself, coalesced per turn of the
loop (guests resumed in one turn go out in one write), and resolves each request's future from
the MSG/HMSG that answers its reply subject.

It logs in on the loop with the blocking lane's `nats_blocking.Login` (the same logins, TLS when
the URL or the server asks for it, and the same server list to fail over through), then the
connection's protocol becomes a `_Wire`. A connection that drops fails the requests in flight on it
(OutcomeUnknown) and the next request connects again, to the next server.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from typing import Any

from wasmfleet.host.plugins.nats_blocking import (
    CONNECT_TIMEOUT_S,
    MAX_CONTROL_LINE,
    Failures,
    Login,
    NotSent,
    OutcomeUnknown,
    Refused,
    Reply,
    error_text,
    header_block,
    lost,
    new_inbox,
    reply_of,
    request_frame,
)

SWEEP_S = 0.05
"""How often a connection with requests in flight looks for those past their deadline (so a
request may fail up to this much after it)."""


class LoopLane:
    """Requests on the calling event loop over one NATS connection at a time (made on demand)."""

    def __init__(self, servers: list[str], connect_kwargs: Mapping[str, Any], name: str = "wasmfleet") -> None:
        self._login = Login(servers, connect_kwargs, name=name)
        self._wire: _Wire | None = None
        self._connecting: asyncio.Future[_Wire] | None = None
        self._sequence = 0
        self._shut = False

    def send(self, subject: str, payload: bytes, headers: Mapping[str, str] | None,
             deadline: float) -> asyncio.Future[Reply] | None:
        """Sends one request now, on the connection there is: the future of its reply, which
        fails with OutcomeUnknown once `deadline` (time.monotonic()) passes without it. None when
        there is no connection (`request` makes one). Refused for a payload the server would refuse."""
        wire = self._wire
        if wire is None or wire.transport is None:
            return None
        block = header_block(headers)
        size = len(block) + len(payload)
        if size > self._login.max_payload:
            raise Refused(f"maximum payload exceeded ({size} > {self._login.max_payload} bytes)")
        self._sequence += 1
        reply_to = b"%s.%d" % (wire.inbox, self._sequence)
        return wire.send(reply_to, subject, request_frame(subject, reply_to, payload, block), deadline)

    async def request(self, subject: str, payload: bytes, headers: Mapping[str, str] | None,
                      deadline: float) -> Reply:
        """`send`, connecting first when there is no connection, and the reply."""
        future = self.send(subject, payload, headers, deadline)
        if future is None:
            await self._connect(deadline)
            future = self.send(subject, payload, headers, deadline)
            if future is None:
                raise OutcomeUnknown("connection lost: it dropped at once")
        return await future

    async def _connect(self, deadline: float) -> _Wire:
        """One connection attempt at a time: requests that find none wait for the same one."""
        if self._connecting is None:
            self._connecting = asyncio.ensure_future(self._open(deadline))
        attempt = self._connecting
        try:
            return await asyncio.shield(attempt)
        finally:
            if attempt.done() and self._connecting is attempt:
                self._connecting = None

    async def _open(self, deadline: float) -> _Wire:
        """Connects to the next server of the list that takes us, trying each once."""
        failures = Failures()
        for server, url in self._login.attempts():
            if self._shut:
                raise Refused("the host is stopping")
            # A server that takes the connection but never answers is left for the next in time.
            limit = max(0.01, min(deadline, time.monotonic() + CONNECT_TIMEOUT_S) - time.monotonic())
            try:
                wire = await asyncio.wait_for(self._log_in(url), limit)
            except TimeoutError:
                failures.add(server, TimeoutError("no answer to the login in time"))
                continue
            except (OSError, ValueError, NotSent) as exc:
                failures.add(server, exc)
                continue
            self._login.current = server
            if self._shut:  # the host stopped meanwhile
                wire.drop("the host is stopping")
                raise Refused("the host is stopping")
            self._wire = wire
            return wire
        raise failures.error()

    async def _log_in(self, url: Any) -> _Wire:
        """INFO, TLS when asked for, CONNECT and its PONG; then the connection is a `_Wire`."""
        loop = asyncio.get_running_loop()
        host = url.hostname or "127.0.0.1"
        greeting = _Greeting()
        # asyncio sets TCP_NODELAY on its TCP transports, as the blocking lane does on its sockets.
        transport, _ = await loop.create_connection(lambda: greeting, host, url.port or 4222)
        try:
            tls = self._login.greeted(url, await greeting.line())
            if tls is not None:
                upgraded = await loop.start_tls(transport, greeting, tls, server_hostname=host)
                assert upgraded is not None
                transport = upgraded
            inbox = new_inbox()
            transport.write(self._login.connect_frame(url, tls is not None, inbox))
            while not (line := await greeting.line()).startswith(b"PONG"):
                if line.startswith(b"-ERR"):
                    raise Refused(error_text(line))
        except BaseException:
            transport.abort()
            raise
        wire = _Wire(inbox.encode(), self._login)
        transport.set_protocol(wire)
        wire.connection_made(transport)
        if greeting.buffer:  # what the server sent after the PONG
            wire.data_received(bytes(greeting.buffer))
        return wire

    def shut(self) -> None:
        """Closes the connection for good (the host stops; on the lane's loop): later requests fail."""
        self._shut = True
        if self._wire is not None:
            self._wire.drop("the host is stopping")


class _Greeting(asyncio.Protocol):
    """A connection while it logs in: its lines, one at a time."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self._arrived: asyncio.Future[None] | None = None
        self._lost: Exception | None = None

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = exc or ValueError("the server closed the connection")
        self._wake()

    def _wake(self) -> None:
        if self._arrived is not None and not self._arrived.done():
            self._arrived.set_result(None)

    async def line(self) -> bytes:
        while (end := self.buffer.find(b"\r\n")) < 0:
            if self._lost is not None:
                raise self._lost
            if len(self.buffer) > MAX_CONTROL_LINE:
                raise ValueError("protocol line too long")
            self._arrived = asyncio.get_running_loop().create_future()
            await self._arrived
        line = bytes(self.buffer[:end + 2])
        del self.buffer[:end + 2]
        return line


class _Wire(asyncio.Protocol):
    """One connection of a LoopLane and the requests in flight on it."""

    def __init__(self, inbox: bytes, login: Login) -> None:
        self.inbox = inbox
        self._login = login
        self.transport: asyncio.Transport | None = None
        self.pending: dict[bytes, tuple[asyncio.Future[Reply], str, float]] = {}
        """Reply subject -> (the request's future, its subject, its deadline)."""
        self._sweeping: asyncio.TimerHandle | None = None
        self._buf = bytearray()
        self._out: list[bytes] = []
        """Frames written this turn of the loop, sent together by `_flush`."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self._out.clear()
        self._fail_all(OutcomeUnknown(lost(exc) if exc is not None else "connection lost: the server closed it"))

    def data_received(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        while True:
            end = buf.find(b"\r\n")
            if end < 0:
                if len(buf) > MAX_CONTROL_LINE:
                    self.drop("protocol line too long")
                return
            if buf.startswith(b"MSG ") or buf.startswith(b"HMSG "):
                parts = bytes(buf[:end]).split()
                size = int(parts[-1])
                if len(buf) < end + 4 + size:
                    return  # the payload is not all here yet
                body = bytes(buf[end + 2:end + 2 + size])
                del buf[:end + 4 + size]
                self._answer(parts, body)
                continue
            line = bytes(buf[:end])
            del buf[:end + 2]
            if line.startswith(b"PING"):
                self.write(b"PONG\r\n")
            elif line.startswith(b"-ERR"):
                self._refused(error_text(line))
            elif line.startswith(b"INFO "):  # the cluster changed: servers may have joined
                self._login.learn(json.loads(line[5:]))
            # +OK, PONG: nothing to do

    def send(self, reply_to: bytes, subject: str, frame: bytes, deadline: float) -> asyncio.Future[Reply]:
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self.pending[reply_to] = (future, subject, deadline)
        self.write(frame)
        if self._sweeping is None:
            self._sweeping = asyncio.get_running_loop().call_later(SWEEP_S, self._sweep)
        return future

    def _sweep(self) -> None:
        """Fails the requests whose deadline passed (one timer per connection, not per request:
        a timer each cost a sizeable part of a request here)."""
        now = time.monotonic()
        for reply_to, (future, _, deadline) in list(self.pending.items()):
            if deadline <= now or future.done():
                del self.pending[reply_to]
                if not future.done():
                    future.set_exception(OutcomeUnknown("no reply in time"))
        self._sweeping = (asyncio.get_running_loop().call_later(SWEEP_S, self._sweep)
                          if self.pending and self.transport is not None else None)

    def _answer(self, parts: list[bytes], body: bytes) -> None:
        waiting = self.pending.pop(parts[1], None)
        if waiting is None or waiting[0].done():
            return  # the late reply of a request given up on
        future = waiting[0]
        reply = reply_of(parts, body)
        if reply.status == 503:
            future.set_exception(NotSent("no responders"))
        else:
            future.set_result(reply)

    def _refused(self, text: str) -> None:
        """An -ERR: a violation refuses the request it names (or all, when it names none); any
        other means the server is closing the connection (e.g. 'Stale Connection')."""
        if "violation" not in text.lower():
            self.drop(f"connection lost: {text}")
            return
        named = [w for w in self.pending.values() if f'"{w[1]}"' in text]
        for future, _, _ in named or list(self.pending.values()):
            if not future.done():
                future.set_exception(Refused(text))

    def write(self, frame: bytes) -> None:
        if not self._out:
            asyncio.get_running_loop().call_soon(self._flush)
        self._out.append(frame)

    def _flush(self) -> None:
        frames, self._out = self._out, []
        if self.transport is not None and frames:
            self.transport.write(b"".join(frames))

    def _fail_all(self, exc: Exception) -> None:
        pending, self.pending = self.pending, {}
        for future, _, _ in pending.values():
            if not future.done():
                future.set_exception(exc)
        if self._sweeping is not None:
            self._sweeping.cancel()
            self._sweeping = None

    def drop(self, why: str) -> None:
        transport, self.transport = self.transport, None
        self._fail_all(OutcomeUnknown(why))
        if transport is not None:
            transport.abort()
