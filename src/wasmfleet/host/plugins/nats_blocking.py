"""NATS requests from the calling thread, on a blocking socket: the keyvalue backend's fast lane.

Why not nats-py: it is asyncio-only, so a host function on a wasm thread that waits for a reply
through it hands its request to an event-loop thread and must be woken when the reply is there.
Under the GIL those two thread switches cost more than the request: 247 µs of process CPU per
set+get pair through the hand-off against 84 µs on this module's connection of the calling
thread, and 4.1k against 11.4k pairs/s (10 threads, one nats-server, this 2-core machine). No maintained synchronous
NATS client exists for Python (nats-py-sync wraps the same event-loop hand-off), so this module
speaks the little of the client protocol that one request needs: INFO, CONNECT (anonymous,
user/password, token or nkey seed; TLS when asked for), one SUB on its own inbox, PUB/HPUB with a
reply subject, MSG/HMSG, PING/PONG. Everything else (subscriptions, creds-file logins, WebSocket,
JetStream administration) stays with nats-py.

A connection serves one thread, and nothing here is locked: the server list, which the caller may
share among the connections to one cluster, is only appended to. One request is outstanding at
a time, so a reply for another subject is a late one of an attempt given up on, and is skipped.
Any failure closes the connection (its state is unknown): the next request connects afresh, to
the next server of the list, which is how a restarted or failed-over server is found again.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import select
import socket
import ssl
import struct
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import nkeys  # type: ignore[import-untyped]

MAX_CONTROL_LINE = 64 * 1024
"""Longest protocol line read (INFO can be a few KB with a large cluster)."""

TICK_S = 0.05
"""Longest single wait of one read or write: each time it runs out the deadline is checked. A
plain socket stays in blocking mode with SO_RCVTIMEO/SO_SNDTIMEO at this (one system call per
read: Python's timeout mode would poll before each, and every call releases and retakes the GIL,
a thread switch when other threads want it); a TLS socket uses Python's timeout mode, since
OpenSSL retries a blocking read that timed out in C, where no deadline is looked at."""

CONNECT_TIMEOUT_S = 2.0
"""Longest wait for one server to take a connection and the login (nats-py's default connect
timeout): then the next is tried."""

IDLE_CHECK_S = 1.0
"""A connection unused this long is looked at before its next request: nobody reads it between
requests, so the server's PINGs wait there for their PONG, and a server that gave up on it
(-ERR 'Stale Connection' after two unanswered PINGs) has closed it."""

LOGINS = frozenset({"user", "password", "token", "nkeys_seed_str", "tls"})
"""The nats.connect() keyword arguments a connection here can honour (see `supports`)."""


class NotSent(Exception):
    """No server took the request (none reachable, login refused, no responders): nothing was
    applied, so any request may be tried again."""


class Refused(NotSent):
    """The server refused the login or the request (an -ERR line: e.g. a permissions violation):
    trying again would not help."""


class OutcomeUnknown(Exception):
    """The request went out but its reply did not come back (connection lost, or the attempt's
    time ran out): only an idempotent request may be tried again."""


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    """The status code of the reply's header line (e.g. 404), 0 when it has none."""
    headers: Mapping[str, str]
    payload: bytes


def supports(servers: list[str], connect_kwargs: Mapping[str, Any]) -> bool:
    """Whether a connection here reaches `servers` and logs in as nats.connect(**connect_kwargs)
    would (not over WebSocket, ws:// and wss://, nor with a creds file)."""
    schemes = {server.partition("://")[0].lower() if "://" in server else "nats" for server in servers}
    return schemes <= {"nats", "tls"} and set(connect_kwargs) <= LOGINS


def encode_headers(headers: Mapping[str, str]) -> bytes:
    lines = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    return f"NATS/1.0\r\n{lines}\r\n".encode()


def decode_headers(block: bytes) -> tuple[int, dict[str, str]]:
    """(status, headers) of a header block: `NATS/1.0[ status[ text]]` then `Name: value` lines."""
    first, *lines = block.decode("utf-8", "replace").split("\r\n")
    parts = first.split(" ", 2)
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    headers: dict[str, str] = {}
    for line in lines:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip()] = value.strip()
    return status, headers


def header_block(headers: Mapping[str, str] | None) -> bytes:
    """The encoded headers of a request, or b"" for none (a plain PUB)."""
    return encode_headers(headers) if headers else b""


def request_frame(subject: str, reply_to: bytes, payload: bytes, block: bytes) -> bytes:
    """The PUB (or, with a header block, HPUB) of one request."""
    if block:
        return b"HPUB %s %s %d %d\r\n%s%s\r\n" % (subject.encode(), reply_to, len(block),
                                                  len(block) + len(payload), block, payload)
    return b"PUB %s %s %d\r\n%s\r\n" % (subject.encode(), reply_to, len(payload), payload)


def reply_of(parts: list[bytes], body: bytes) -> Reply:
    """The Reply of a MSG or HMSG whose control line split into `parts`, with its body."""
    if parts[0] == b"MSG":
        return Reply(0, {}, body)
    header_size = int(parts[-2])
    status, headers = decode_headers(body[:header_size])
    return Reply(status, headers, body[header_size:])


class Login:
    """How to reach and log in to one cluster, for one connection at a time of either lane (this
    module's, or nats_loop_lane's): the server list and its rotation, the CONNECT a login sends,
    TLS, and what the servers' INFO lines teach."""

    def __init__(self, servers: list[str], connect_kwargs: Mapping[str, Any], name: str = "wasmfleet") -> None:
        self.servers = servers
        """The servers given, then those the cluster advertised (INFO connect_urls). The caller may
        share one list among the connections to one cluster: what one learns, all use."""
        self.kwargs = dict(connect_kwargs)
        self.name = name
        self.current = ""
        """The server of the connection made last."""
        self.max_payload = 1 << 20
        """The largest message the current server takes (its INFO's max_payload)."""
        self._next = 0
        self._nonce = ""

    def attempts(self) -> Iterator[tuple[str, Any]]:
        """Each server (and its parsed URL) once, from the one after the server tried last: a
        failed or restarted server is left for the next. Servers learnt meanwhile are tried too."""
        for _ in self.servers:
            server = self.servers[self._next % len(self.servers)]
            self._next += 1
            yield server, urlsplit(server if "://" in server else f"nats://{server}")

    def greeted(self, url: Any, line: bytes) -> ssl.SSLContext | None:
        """Takes in the INFO line a server greets with; returns the TLS context to go on with, or
        None for a plain connection."""
        if not line.startswith(b"INFO "):
            raise NotSent(f"not a NATS server (it said {line[:40]!r})")
        info = json.loads(line[5:])
        self._learn(info, url)
        self.max_payload = int(info.get("max_payload") or self.max_payload)
        self._nonce = str(info.get("nonce", ""))
        tls: ssl.SSLContext | None = self.kwargs.get("tls")
        if tls is None and (info.get("tls_required") or url.scheme == "tls"):
            tls = ssl.create_default_context()
        return tls

    def connect_frame(self, url: Any, tls: bool, inbox: str) -> bytes:
        """CONNECT with the login, SUB to `inbox`.*, and a PING: its PONG proves the server took
        the login (a refusal is -ERR, then close)."""
        connect: dict[str, Any] = {
            "verbose": False, "pedantic": False, "tls_required": tls, "name": self.name,
            "lang": "python3", "version": "wasmfleet", "protocol": 1, "headers": True, "no_responders": True,
        }
        connect.update(self._credentials(url))
        return b"CONNECT " + json.dumps(connect).encode() + b"\r\nSUB " + inbox.encode() + b".* 1\r\nPING\r\n"

    def _learn(self, info: Mapping[str, Any], url: Any) -> None:
        """Adds the cluster's other servers that `info` advertises (connect_urls) to the list, as
        nats-py does: a client given one server's URL fails over to the others. They are reached
        with the scheme and login of the URL they were learnt from (the same cluster's servers)."""
        userinfo = url.netloc.rpartition("@")[0]
        for address in info.get("connect_urls") or ():
            server = f"{url.scheme}://{userinfo + '@' if userinfo else ''}{address}"
            if server not in self.servers:
                self.servers.append(server)

    def learn(self, info: Mapping[str, Any]) -> None:
        """Takes in an INFO the current server sent after the login (servers joined the cluster)."""
        self._learn(info, urlsplit(self.current))

    def _credentials(self, url: Any) -> dict[str, str]:
        kwargs = self.kwargs
        if "nkeys_seed_str" in kwargs:
            pair = nkeys.from_seed(str(kwargs["nkeys_seed_str"]).encode())
            signed = pair.sign(self._nonce.encode())
            return {"nkey": pair.public_key.decode(), "sig": base64.urlsafe_b64encode(signed).rstrip(b"=").decode()}
        if "token" in kwargs:
            return {"auth_token": str(kwargs["token"])}
        if "user" in kwargs:
            return {"user": str(kwargs["user"]), "pass": str(kwargs.get("password") or "")}
        if url.username and url.password is not None:
            return {"user": unquote(url.username), "pass": unquote(url.password)}
        if url.username:
            return {"auth_token": unquote(url.username)}
        return {}


class Failures:
    """Why each server of one round of attempts did not take the connection."""

    def __init__(self) -> None:
        self.causes: list[str] = []
        self.refused = False

    def add(self, server: str, exc: BaseException) -> None:
        self.refused = self.refused or isinstance(exc, Refused)
        self.causes.append(f"{server}: {exc or type(exc).__name__}")

    def error(self) -> NotSent:
        """Refused when a server refused (a login would fail again), else NotSent."""
        return (Refused if self.refused else NotSent)("; ".join(self.causes))


def new_inbox() -> str:
    return f"_INBOX.{os.urandom(12).hex()}"


class BlockingConnection:
    """One NATS connection used by one thread, for request/reply only."""

    def __init__(self, servers: list[str], connect_kwargs: Mapping[str, Any], name: str = "wasmfleet") -> None:
        self.login = Login(servers, connect_kwargs, name)
        self._sock: socket.socket | None = None
        self._buf = bytearray()
        self._deadline = 0.0
        """Of the operation under way: reads and writes give up after it (TimeoutError)."""
        self._inbox = ""
        self._sequence = 0
        self._last_used = 0.0
        self._shut = False

    # ---- connecting ------------------------------------------------------------------------

    def _connect(self, deadline: float) -> None:
        """Connects to the next server of the list that takes us, trying each once."""
        failures = Failures()
        for server, url in self.login.attempts():
            # A server that takes the connection but never answers is left for the next in time.
            self._deadline = min(deadline, time.monotonic() + CONNECT_TIMEOUT_S)
            try:
                self._handshake(url, self._deadline)
                self.login.current = server
                return
            except (OSError, ValueError, NotSent) as exc:
                self.close()
                failures.add(server, exc)
        raise failures.error()

    def _handshake(self, url: Any, deadline: float) -> None:
        host, port = url.hostname or "127.0.0.1", url.port or 4222
        sock = socket.create_connection((host, port), timeout=max(0.01, deadline - time.monotonic()))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._use(sock, tls=False)
        tls = self.login.greeted(url, self._readline())
        if tls is not None:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            self._use(tls.wrap_socket(sock, server_hostname=host), tls=True)
        self._inbox = new_inbox()
        self._send(self.login.connect_frame(url, tls is not None, self._inbox))
        while True:
            line = self._readline()
            if line.startswith(b"PONG"):
                return
            if line.startswith(b"-ERR"):
                raise Refused(error_text(line))

    def _use(self, sock: socket.socket, tls: bool) -> None:
        if tls:
            sock.settimeout(TICK_S)
        else:
            sock.settimeout(None)
            tick = struct.pack("ll", int(TICK_S), int(TICK_S % 1 * 1e6))  # struct timeval
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, tick)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, tick)
        self._sock = sock
        self._buf.clear()

    # ---- requests --------------------------------------------------------------------------

    def request(self, subject: str, payload: bytes, headers: Mapping[str, str] | None,
                deadline: float) -> Reply:
        """Sends one request and waits for its reply until `deadline` (time.monotonic())."""
        if self._sock is not None and time.monotonic() - self._last_used > IDLE_CHECK_S:
            self._catch_up()
        if self._sock is None:
            if self._shut:
                raise Refused("the host is stopping")
            self._connect(deadline)
        self._deadline = deadline
        self._sequence += 1
        reply_to = f"{self._inbox}.{self._sequence}".encode()
        try:
            self._send(request_frame(subject, reply_to, payload, header_block(headers)))
        except (OSError, ValueError) as exc:
            self.close()
            raise OutcomeUnknown(lost(exc)) from None
        try:
            return self._await_reply(reply_to)
        except (OSError, ValueError) as exc:
            self.close()
            raise OutcomeUnknown(lost(exc)) from None
        finally:
            self._last_used = time.monotonic()

    def _catch_up(self) -> None:
        """Handles what arrived while the connection sat unused: answers PINGs; drops the
        connection if the server closed it or said it would (it is made again for the request)."""
        assert self._sock is not None
        self._deadline = time.monotonic() + TICK_S
        try:
            while select.select([self._sock], [], [], 0)[0]:
                self._fill()
            while b"\r\n" in self._buf:
                line = self._readline()
                if line.startswith(b"PING"):
                    self._send(b"PONG\r\n")
                elif line.startswith(b"-ERR"):
                    raise ValueError(error_text(line))
                elif line.startswith(b"MSG ") or line.startswith(b"HMSG "):
                    self._message(line)  # the late reply of an attempt given up on
        except (OSError, ValueError):
            self.close()

    def _await_reply(self, reply_to: bytes) -> Reply:
        while True:
            line = self._readline()
            if line.startswith(b"MSG ") or line.startswith(b"HMSG "):
                reply = self._message(line)
                if line.split(b" ", 2)[1] == reply_to:
                    if reply.status == 503:
                        raise NotSent("no responders")
                    return reply
            elif line.startswith(b"PING"):
                self._send(b"PONG\r\n")
            elif line.startswith(b"-ERR"):
                self.close()  # a permissions violation leaves it open; a fresh one is cheap
                text = error_text(line)
                if "violation" in text.lower():  # of permissions, of the maximum payload: this request's
                    raise Refused(text)
                raise OutcomeUnknown(f"connection lost: {text}")  # e.g. 'Stale Connection
            elif line.startswith(b"INFO "):  # the cluster changed: servers may have joined
                self.login.learn(json.loads(line[5:]))
            # +OK, PONG: nothing to do

    def _message(self, line: bytes) -> Reply:
        parts = line.split()
        return reply_of(parts, self._read(int(parts[-1]) + 2)[:-2])

    # ---- the socket --------------------------------------------------------------------------

    def _send(self, data: bytes) -> None:
        assert self._sock is not None
        view = memoryview(data)
        while view:
            try:
                view = view[self._sock.send(view):]
            except (BlockingIOError, TimeoutError):  # a tick ran out (the server reads slowly)
                self._check_deadline()

    def _fill(self) -> None:
        assert self._sock is not None
        while True:
            try:
                chunk = self._sock.recv(65536)
            except (BlockingIOError, TimeoutError):  # a tick ran out
                self._check_deadline()
                continue
            if not chunk:
                raise ValueError("the server closed the connection")
            self._buf += chunk
            return

    def _check_deadline(self) -> None:
        if time.monotonic() >= self._deadline:
            raise TimeoutError("no reply in time")

    def _readline(self) -> bytes:
        while True:
            end = self._buf.find(b"\r\n")
            if end >= 0:
                line = bytes(self._buf[:end + 2])
                del self._buf[:end + 2]
                return line
            if len(self._buf) > MAX_CONTROL_LINE:
                raise ValueError("protocol line too long")
            self._fill()

    def _read(self, size: int) -> bytes:
        while len(self._buf) < size:
            self._fill()
        data = bytes(self._buf[:size])
        del self._buf[:size]
        return data

    def shut(self) -> None:
        """Closes the connection for good (the host stops): a request under way, or made later,
        fails instead of connecting again."""
        self._shut = True
        self.close()

    def close(self) -> None:
        sock, self._sock = self._sock, None
        self._buf.clear()
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()


def lost(exc: BaseException) -> str:
    return "no reply in time" if isinstance(exc, TimeoutError) else f"connection lost: {exc}"


def error_text(line: bytes) -> str:
    return line[4:].decode("utf-8", "replace").strip(" '\r\n")
