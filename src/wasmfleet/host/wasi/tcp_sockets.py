"""wasi:sockets/tcp: the tcp-socket resource, its state machine and its byte streams.

A socket bound, listening or talking to a loopback address is an AF_UNIX stream socket on the
workload's private loopback (`private_loopback`); a connection to any other address (allowed by
`socket_policy`), or to a host loopback port listed in allowedHostLoopbackPorts, is a real TCP
socket. Every OS socket is non-blocking: `start-connect` starts, `finish-connect` answers
`would-block` until done, `accept` answers `would-block` when no client waits, and the pollable
of `subscribe` (and of the streams) waits in the kernel (`io.Pollable.wait_fd`).

States follow the WIT: unbound -> bind-started -> bound -> listen-started -> listening, or
(unbound | bound) -> connect-started -> connected | closed. A call in the wrong state fails with
`invalid-state`, a finish- without its start- with `not-in-progress`, a start- while another
operation is in progress with `concurrency-conflict`.

Options (keep-alive, hop limit, buffer sizes) are validated as the WIT says (0 is
`invalid-argument`), remembered, applied to the real socket when there is one, and inherited by
accepted sockets. AF_UNIX has no keep-alive or TTL, so on the private loopback they are kept
for the guest to read back and have no effect.
"""

from __future__ import annotations

import contextlib
import select
import socket
from typing import Any

from wasmfleet.host.plugin_api.interfaces import OK, err, ok
from wasmfleet.host.wasi import io
from wasmfleet.host.wasi.socket_core import (
    IPV4,
    Session,
    SockAddr,
    SocketError,
    check_bindable,
    check_remote,
    error_code,
    fd_ready,
    loopback_ip,
    os_family,
    session,
    wait_until,
)

WRITE_BUDGET = 1 << 16
"""Bytes a guest may write per check-write while nothing is pending."""
MAX_BACKLOG = 4096
SECOND_NS = 1_000_000_000


class Connection:
    """The OS socket of a connected tcp-socket, shared by its two streams."""

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self.sock = sock
        self.pending = bytearray()
        self.read_shut = False
        self.write_failed = False
        self.closed = False

    def drain(self) -> None:
        """Sends what the kernel takes now of the pending output."""
        while self.pending and not self.write_failed:
            try:
                sent = self.sock.send(self.pending[: 1 << 20])
            except BlockingIOError:
                return
            except OSError:
                self.write_failed = True
                self.pending.clear()
                return
            del self.pending[:sent]

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.drain()
            self.sock.close()


class TcpInput(io.InputStream):
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def read(self, n: int) -> bytes | None:
        conn = self.conn
        if conn.read_shut or conn.closed:
            return None
        if n == 0:
            return b""
        try:
            data = conn.sock.recv(min(n, 1 << 20))
        except BlockingIOError:
            return b""
        except OSError as exc:
            raise io.StreamFailed(error_code(exc)) from None
        return data or None

    def ready(self) -> bool:
        conn = self.conn
        return conn.read_shut or conn.closed or fd_ready(conn.sock.fileno(), select.POLLIN)

    def wait_fd(self) -> tuple[int, int] | None:
        conn = self.conn
        return None if conn.closed else (conn.sock.fileno(), select.POLLIN)

    def blocking_read(self, n: int) -> bytes | None:
        while True:
            data = self.read(n)
            if data is None or data or n == 0:
                return data
            wait_until(self.conn.sock.fileno(), select.POLLIN)


class TcpOutput(io.OutputStream):
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    @property
    def closed(self) -> bool:  # type: ignore[override]  # read-only here: the connection decides
        conn = self.conn
        return conn.write_failed or conn.closed

    def check_write(self) -> int:
        self.conn.drain()
        return 0 if self.conn.pending else WRITE_BUDGET

    def write(self, data: bytes) -> None:
        conn = self.conn
        conn.pending += data
        conn.drain()

    def flush(self) -> None:
        conn = self.conn
        conn.drain()
        while conn.pending and not self.closed:
            wait_until(conn.sock.fileno(), select.POLLOUT)
            conn.drain()

    def ready(self) -> bool:
        self.conn.drain()
        return self.closed or not self.conn.pending

    def wait_fd(self) -> tuple[int, int] | None:
        conn = self.conn
        return (conn.sock.fileno(), select.POLLOUT) if conn.pending and not self.closed else None


class Options:
    """What the guest set (kept per socket, inherited by accepted sockets)."""

    def __init__(self) -> None:
        self.keep_alive = False
        self.keep_alive_idle_ns = 7200 * SECOND_NS  # Linux's defaults
        self.keep_alive_interval_ns = 75 * SECOND_NS
        self.keep_alive_count = 9
        self.hop_limit = 64
        self.receive_buffer = 0  # 0: the OS default (read from the socket)
        self.send_buffer = 0

    def copy(self) -> Options:
        other = Options()
        other.__dict__.update(self.__dict__)
        return other


class TcpSocket:
    """A tcp-socket resource (see the module doc for the state machine)."""

    def __init__(self, family: str, sess: Session, options: Options | None = None) -> None:
        self.family = family
        self.session = sess
        self.state = "unbound"
        self.options = options or Options()
        self.unix: socket.socket | None = None
        """The private-loopback socket: bound, listening, or the client side of a loopback connect."""
        self.owned_port: int | None = None
        """The loopback port this socket reserved (its file is removed on close)."""
        self.local: SockAddr | None = None
        self.remote: SockAddr | None = None
        self.inet: socket.socket | None = None
        """A real TCP socket (outbound, or the host's loopback)."""
        self.backlog = 128
        self.conn: Connection | None = None
        self.connect_error: str | None = None
        self.unix_target: int | None = None
        """A loopback connect the listener's full backlog deferred (retried until accepted)."""

    # --- bind / listen / accept -----------------------------------------------------------

    def start_bind(self, _network: Any, address: tuple[str, Any]) -> tuple[str, Any]:
        if self.state in ("bind-started", "connect-started", "listen-started"):
            return err("concurrency-conflict")
        if self.state != "unbound":
            return err("invalid-state")
        addr = SockAddr.from_wit(address)
        try:
            check_bindable(self.family, addr)
            self._reserve(addr.port)
        except SocketError as exc:
            return err(exc.code)
        self.local = SockAddr(addr.ip, self.owned_port or 0)
        self.state = "bind-started"
        return OK

    def _reserve(self, port: int) -> None:
        unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        unix.setblocking(False)
        try:
            self.owned_port = self.session.loopback.bind(unix, "tcp", port)
        except OSError as exc:
            unix.close()
            raise SocketError(error_code(exc)) from None
        self._apply_buffers(unix)
        self.unix = unix

    def finish_bind(self) -> tuple[str, Any]:
        if self.state != "bind-started":
            return err("not-in-progress")
        self.state = "bound"
        return OK

    def start_listen(self) -> tuple[str, Any]:
        if self.state in ("bind-started", "connect-started", "listen-started"):
            return err("concurrency-conflict")
        if self.state != "bound" or self.unix is None:
            return err("invalid-state")
        try:
            self.unix.listen(self.backlog)
        except OSError as exc:
            return err(error_code(exc))
        self.state = "listen-started"
        return OK

    def finish_listen(self) -> tuple[str, Any]:
        if self.state != "listen-started":
            return err("not-in-progress")
        self.state = "listening"
        return OK

    def accept(self) -> tuple[str, Any]:
        if self.state != "listening" or self.unix is None or self.local is None:
            return err("invalid-state")
        try:
            sock, peer = self.unix.accept()
        except BlockingIOError:
            return err("would-block")
        except OSError as exc:
            return err(error_code(exc))
        child = TcpSocket(self.family, self.session, self.options.copy())
        child.state = "connected"
        ip = loopback_ip(self.family) if self.local.ip.is_unspecified else self.local.ip
        child.local = SockAddr(ip, self.local.port)
        child.remote = SockAddr(ip, self.session.loopback.port_of(peer) or 0)
        child.conn = Connection(sock)
        child._apply_buffers(sock)
        return ok((child, TcpInput(child.conn), TcpOutput(child.conn)))

    # --- connect ------------------------------------------------------------------------

    def start_connect(self, _network: Any, address: tuple[str, Any]) -> tuple[str, Any]:
        if self.state in ("bind-started", "connect-started", "listen-started"):
            return err("concurrency-conflict")
        if self.state not in ("unbound", "bound"):
            return err("invalid-state")
        addr = SockAddr.from_wit(address)
        try:
            check_remote(self.family, addr)
            if addr.ip.is_loopback:
                self._connect_loopback(addr)
            elif not self.session.policy.may_reach(addr.ip):
                raise SocketError("access-denied")
            else:
                self._connect_inet(addr)
        except SocketError as exc:
            return err(exc.code)
        self.remote = addr
        self.state = "connect-started"
        return OK

    def _connect_loopback(self, addr: SockAddr) -> None:
        if self.unix is None:  # an implicit bind: the peer sees this port as ours
            self._reserve(0)
            self.local = SockAddr(loopback_ip(self.family), self.owned_port or 0)
        elif self.local is not None and self.local.ip.is_unspecified:
            self.local = SockAddr(loopback_ip(self.family), self.local.port)
        assert self.unix is not None
        try:
            self.session.loopback.connect(self.unix, "tcp", addr.port)
        except BlockingIOError:
            self.unix_target = addr.port  # the listener's backlog is full: retried on finish/poll
        except (FileNotFoundError, ConnectionRefusedError):
            if self.session.policy.host_loopback_allowed(addr.port, "tcp"):
                self._connect_inet(addr)
            else:
                self.connect_error = "connection-refused"
        except OSError as exc:
            self.connect_error = error_code(exc)

    def _connect_inet(self, addr: SockAddr) -> None:
        try:
            sock = socket.socket(os_family(self.family), socket.SOCK_STREAM)
        except OSError as exc:
            raise SocketError(error_code(exc)) from None
        sock.setblocking(False)
        self.inet = sock
        self._apply_all(sock)
        code = sock.connect_ex(addr.os_address())
        if code not in (0, 115):  # 115: EINPROGRESS
            self.connect_error = error_code(OSError(code, ""))

    def _connect_done(self) -> bool:
        """True when the connect attempt has an outcome (success or `connect_error`)."""
        if self.connect_error is not None:
            return True
        if self.unix_target is not None:
            assert self.unix is not None
            try:
                self.session.loopback.connect(self.unix, "tcp", self.unix_target)
            except BlockingIOError:
                return False
            except OSError as exc:
                self.connect_error = error_code(exc)
            self.unix_target = None
            return True
        if self.inet is not None:
            if not fd_ready(self.inet.fileno(), select.POLLOUT):
                return False
            code = self.inet.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if code:
                self.connect_error = error_code(OSError(code, ""))
        return True

    def finish_connect(self) -> tuple[str, Any]:
        if self.state != "connect-started":
            return err("not-in-progress")
        if not self._connect_done():
            return err("would-block")
        if self.connect_error is not None:
            code, self.connect_error = self.connect_error, None
            self.state = "closed"
            self._close_sockets()
            return err(code)
        sock = self.inet or self.unix
        assert sock is not None
        if self.inet is not None:
            with contextlib.suppress(OSError):
                self.local = SockAddr.from_os(self.inet.getsockname())
        self.state = "connected"
        self.conn = Connection(sock)
        return ok((TcpInput(self.conn), TcpOutput(self.conn)))

    # --- addresses and state -------------------------------------------------------------

    def local_address(self) -> tuple[str, Any]:
        if self.local is None or self.state in ("unbound", "closed"):
            return err("invalid-state")
        return ok(self.local.to_wit())

    def remote_address(self) -> tuple[str, Any]:
        if self.state != "connected" or self.remote is None:
            return err("invalid-state")
        return ok(self.remote.to_wit())

    def is_listening(self) -> bool:
        return self.state == "listening"

    def address_family(self) -> str:
        return self.family

    def set_listen_backlog_size(self, value: int) -> tuple[str, Any]:
        if value == 0:
            return err("invalid-argument")
        if self.state in ("connect-started", "connected", "closed"):
            return err("invalid-state")
        self.backlog = min(value, MAX_BACKLOG)
        if self.state == "listening" and self.unix is not None:
            with contextlib.suppress(OSError):
                self.unix.listen(self.backlog)  # Linux resizes the queue of a listening socket
        return OK

    def shutdown(self, how: str) -> tuple[str, Any]:
        conn = self.conn
        if self.state != "connected" or conn is None:
            return err("invalid-state")
        if how in ("receive", "both"):
            conn.read_shut = True
        if how in ("send", "both"):
            conn.drain()
            while conn.pending and not conn.write_failed:
                wait_until(conn.sock.fileno(), select.POLLOUT)
                conn.drain()
        mode = {"receive": socket.SHUT_RD, "send": socket.SHUT_WR, "both": socket.SHUT_RDWR}[how]
        with contextlib.suppress(OSError):  # ENOTCONN once the peer is gone: nothing left to shut
            conn.sock.shutdown(mode)
        return OK

    # --- options ------------------------------------------------------------------------

    def _apply_all(self, sock: socket.socket) -> None:
        o = self.options
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, int(o.keep_alive))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, max(1, o.keep_alive_idle_ns // SECOND_NS))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL,
                            max(1, o.keep_alive_interval_ns // SECOND_NS))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, o.keep_alive_count)
            if self.family == IPV4:
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, o.hop_limit)
            else:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, o.hop_limit)
        self._apply_buffers(sock)

    def _apply_buffers(self, sock: socket.socket) -> None:
        o = self.options
        with contextlib.suppress(OSError):
            if o.receive_buffer:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, min(o.receive_buffer, 1 << 30))
            if o.send_buffer:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, min(o.send_buffer, 1 << 30))

    def _os_sockets(self) -> list[socket.socket]:
        found = [s for s in (self.inet, self.unix) if s is not None and s.fileno() >= 0]
        if self.conn is not None and not self.conn.closed:
            found.append(self.conn.sock)
        return found

    def _set(self, name: str, value: Any, valid: bool) -> tuple[str, Any]:
        if not valid:
            return err("invalid-argument")
        setattr(self.options, name, value)
        for sock in self._os_sockets():
            if sock.family != socket.AF_UNIX:
                self._apply_all(sock)
            else:
                self._apply_buffers(sock)
        return OK

    def _buffer(self, which: int, remembered: int) -> tuple[str, Any]:
        if remembered:
            return ok(remembered)
        for sock in self._os_sockets():
            with contextlib.suppress(OSError):
                return ok(sock.getsockopt(socket.SOL_SOCKET, which))
        return ok(1 << 16 if which == socket.SO_RCVBUF else 1 << 14)

    def keep_alive_enabled(self) -> tuple[str, Any]:
        return ok(self.options.keep_alive)

    def set_keep_alive_enabled(self, value: bool) -> tuple[str, Any]:
        return self._set("keep_alive", bool(value), True)

    def keep_alive_idle_time(self) -> tuple[str, Any]:
        return ok(self.options.keep_alive_idle_ns)

    def set_keep_alive_idle_time(self, value: int) -> tuple[str, Any]:
        # Whole seconds at the OS (TCP_KEEPIDLE): round up, as wasmtime does.
        return self._set("keep_alive_idle_ns", -(-value // SECOND_NS) * SECOND_NS, value > 0)

    def keep_alive_interval(self) -> tuple[str, Any]:
        return ok(self.options.keep_alive_interval_ns)

    def set_keep_alive_interval(self, value: int) -> tuple[str, Any]:
        return self._set("keep_alive_interval_ns", -(-value // SECOND_NS) * SECOND_NS, value > 0)

    def keep_alive_count(self) -> tuple[str, Any]:
        return ok(self.options.keep_alive_count)

    def set_keep_alive_count(self, value: int) -> tuple[str, Any]:
        return self._set("keep_alive_count", value, value > 0)

    def hop_limit(self) -> tuple[str, Any]:
        return ok(self.options.hop_limit)

    def set_hop_limit(self, value: int) -> tuple[str, Any]:
        return self._set("hop_limit", value, value > 0)

    def receive_buffer_size(self) -> tuple[str, Any]:
        return self._buffer(socket.SO_RCVBUF, self.options.receive_buffer)

    def set_receive_buffer_size(self, value: int) -> tuple[str, Any]:
        return self._set("receive_buffer", value, value > 0)

    def send_buffer_size(self) -> tuple[str, Any]:
        return self._buffer(socket.SO_SNDBUF, self.options.send_buffer)

    def set_send_buffer_size(self, value: int) -> tuple[str, Any]:
        return self._set("send_buffer", value, value > 0)

    # --- readiness and drop -------------------------------------------------------------

    def subscribe(self) -> io.Pollable:
        return io.CallbackPollable(self._ready, self._wait_fd)

    def _ready(self) -> bool:
        if self.state == "connect-started":
            return self._connect_done()
        if self.state == "listening" and self.unix is not None:
            return fd_ready(self.unix.fileno(), select.POLLIN)
        return True

    def _wait_fd(self) -> tuple[int, int] | None:
        if self.state == "connect-started" and self.inet is not None and self.connect_error is None:
            return (self.inet.fileno(), select.POLLOUT)
        if self.state == "listening" and self.unix is not None:
            return (self.unix.fileno(), select.POLLIN)
        return None

    def _close_sockets(self) -> None:
        for sock in (self.inet, self.unix):
            if sock is not None:
                sock.close()
        self.inet = self.unix = None
        if self.owned_port is not None:
            self.session.loopback.release("tcp", self.owned_port)
            self.owned_port = None

    def close(self) -> None:
        """The guest dropped the socket (its streams stop working too)."""
        if self.conn is not None:
            self.conn.close()
        self._close_sockets()
        self.state = "closed"


def create(family: str) -> tuple[str, Any]:
    """wasi:sockets/tcp-create-socket.create-tcp-socket (no OS socket until bind or connect)."""
    return ok(TcpSocket(family, session()))


FUNCTIONS = {
    f"[method]tcp-socket.{name.replace('_', '-')}": getattr(TcpSocket, name)
    for name in (
        "start_bind", "finish_bind", "start_connect", "finish_connect", "start_listen", "finish_listen",
        "accept", "local_address", "remote_address", "is_listening", "address_family",
        "set_listen_backlog_size", "keep_alive_enabled", "set_keep_alive_enabled", "keep_alive_idle_time",
        "set_keep_alive_idle_time", "keep_alive_interval", "set_keep_alive_interval", "keep_alive_count",
        "set_keep_alive_count", "hop_limit", "set_hop_limit", "receive_buffer_size",
        "set_receive_buffer_size", "send_buffer_size", "set_send_buffer_size", "subscribe", "shutdown",
    )
}
