"""wasi:sockets/udp: udp-socket, incoming-datagram-stream and outgoing-datagram-stream.

A bound socket is an AF_UNIX datagram socket `udp-<port>` on the workload's private loopback;
datagrams to a loopback address go to the `udp-<port>` of the destination port (dropped, as UDP
drops them, when nothing is bound there, unless allowedHostLoopbackPorts lets them go to the
host's real loopback). Datagrams to other addresses (allowed by `socket_policy`, else the send
fails with `access-denied`) leave through a real UDP socket made on first use; `receive` reads
both. With a remote address given to `stream`, only that peer's datagrams are received and
datagrams without an address go there, as for a connected UDP socket.

`check-send` permits a number of datagrams; `send` of more than the last permit traps, as the
WIT requires.
"""

from __future__ import annotations

import contextlib
import select
import socket
from typing import Any

from wasmfleet.host.plugin_api.interfaces import OK, err, ok
from wasmfleet.host.wasi import io
from wasmfleet.host.wasi.socket_core import (
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
)

SEND_PERMIT = 64
"""Datagrams a check-send permits while the socket can take more."""
MAX_DATAGRAM = 65507


class UdpSocket:
    def __init__(self, family: str, sess: Session) -> None:
        self.family = family
        self.session = sess
        self.state = "unbound"  # bind-started, bound, closed
        self.unix: socket.socket | None = None
        self.port = 0
        self.local: SockAddr | None = None
        self.remote: SockAddr | None = None
        self.inet: socket.socket | None = None
        self.hop_limit = 64
        self.receive_buffer = 0
        self.send_buffer = 0

    def start_bind(self, _network: Any, address: tuple[str, Any]) -> tuple[str, Any]:
        if self.state == "bind-started":
            return err("concurrency-conflict")
        if self.state != "unbound":
            return err("invalid-state")
        addr = SockAddr.from_wit(address)
        try:
            check_bindable(self.family, addr)
        except SocketError as exc:
            return err(exc.code)
        unix = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        unix.setblocking(False)
        try:
            self.port = self.session.loopback.bind(unix, "udp", addr.port)
        except OSError as exc:
            unix.close()
            return err(error_code(exc))
        self.unix = unix
        self._apply(unix)
        self.local = SockAddr(addr.ip, self.port)
        self.state = "bind-started"
        return OK

    def finish_bind(self) -> tuple[str, Any]:
        if self.state != "bind-started":
            return err("not-in-progress")
        self.state = "bound"
        return OK

    def stream(self, remote: tuple[str, Any] | None) -> tuple[str, Any]:
        if self.state != "bound":
            return err("invalid-state")
        if remote is None:
            self.remote = None
        else:
            addr = SockAddr.from_wit(remote)
            try:
                check_remote(self.family, addr)
                if not addr.ip.is_loopback and not self.session.policy.may_reach(addr.ip):
                    raise SocketError("access-denied")
            except SocketError as exc:
                return err(exc.code)
            self.remote = addr
        return ok((IncomingDatagrams(self), OutgoingDatagrams(self)))

    def local_address(self) -> tuple[str, Any]:
        if self.local is None or self.state not in ("bind-started", "bound"):
            return err("invalid-state")
        return ok(self.local.to_wit())

    def remote_address(self) -> tuple[str, Any]:
        if self.remote is None:
            return err("invalid-state")
        return ok(self.remote.to_wit())

    def address_family(self) -> str:
        return self.family

    def unicast_hop_limit(self) -> tuple[str, Any]:
        return ok(self.hop_limit)

    def set_unicast_hop_limit(self, value: int) -> tuple[str, Any]:
        if value == 0:
            return err("invalid-argument")
        self.hop_limit = value
        if self.inet is not None:
            self._apply(self.inet)
        return OK

    def receive_buffer_size(self) -> tuple[str, Any]:
        return ok(self.receive_buffer or self._os_option(socket.SO_RCVBUF))

    def set_receive_buffer_size(self, value: int) -> tuple[str, Any]:
        if value == 0:
            return err("invalid-argument")
        self.receive_buffer = value
        self._apply_all()
        return OK

    def send_buffer_size(self) -> tuple[str, Any]:
        return ok(self.send_buffer or self._os_option(socket.SO_SNDBUF))

    def set_send_buffer_size(self, value: int) -> tuple[str, Any]:
        if value == 0:
            return err("invalid-argument")
        self.send_buffer = value
        self._apply_all()
        return OK

    def _os_option(self, which: int) -> int:
        for sock in (self.unix, self.inet):
            if sock is not None:
                with contextlib.suppress(OSError):
                    value: int = sock.getsockopt(socket.SOL_SOCKET, which)
                    return value
        return 1 << 16

    def _apply_all(self) -> None:
        for sock in (self.unix, self.inet):
            if sock is not None:
                self._apply(sock)

    def _apply(self, sock: socket.socket) -> None:
        with contextlib.suppress(OSError):
            if self.receive_buffer:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, min(self.receive_buffer, 1 << 30))
            if self.send_buffer:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, min(self.send_buffer, 1 << 30))
            if sock.family == socket.AF_INET:
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, self.hop_limit)
            elif sock.family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, self.hop_limit)

    def inet_socket(self) -> socket.socket:
        """The real UDP socket for datagrams leaving the private loopback (made on first use)."""
        if self.inet is None:
            sock = socket.socket(os_family(self.family), socket.SOCK_DGRAM)
            sock.setblocking(False)
            self._apply(sock)
            self.inet = sock
        return self.inet

    def subscribe(self) -> io.Pollable:
        return io.Pollable()  # nothing in udp-socket itself is asynchronous beyond bind

    def close(self) -> None:
        for sock in (self.unix, self.inet):
            if sock is not None:
                sock.close()
        self.unix = self.inet = None
        if self.state in ("bind-started", "bound"):
            self.session.loopback.release("udp", self.port)
        self.state = "closed"


class IncomingDatagrams:
    def __init__(self, owner: UdpSocket) -> None:
        self.owner = owner

    def receive(self, max_results: int) -> tuple[str, Any]:
        owner = self.owner
        got: list[tuple[bytes, Any]] = []
        sources = [s for s in (owner.unix, owner.inet) if s is not None]
        for sock in sources:
            while len(got) < max_results:
                try:
                    data, peer = sock.recvfrom(MAX_DATAGRAM + 1)
                except BlockingIOError:
                    break
                except OSError as exc:
                    if got:
                        break
                    return err(error_code(exc))
                sender = self._sender(sock, peer)
                if sender is None or (owner.remote is not None and sender != owner.remote):
                    continue  # an unbound sender or, on a "connected" stream, another peer
                got.append((data, sender.to_wit()))
        return ok(got)

    def _sender(self, sock: socket.socket, peer: Any) -> SockAddr | None:
        owner = self.owner
        if sock.family == socket.AF_UNIX:
            port = owner.session.loopback.port_of(peer)
            if port is None:
                return None
            ip = owner.remote.ip if owner.remote is not None and owner.remote.ip.is_loopback else loopback_ip(
                owner.family)
            return SockAddr(ip, port)
        return SockAddr.from_os(peer)

    def _ready(self) -> bool:
        return any(fd_ready(s.fileno(), select.POLLIN) for s in (self.owner.unix, self.owner.inet) if s is not None)

    def _wait_fd(self) -> tuple[int, int] | None:
        owner = self.owner
        if owner.inet is None and owner.unix is not None:
            return (owner.unix.fileno(), select.POLLIN)
        return None  # two sockets: polled (see io.poll)

    def subscribe(self) -> io.Pollable:
        return io.CallbackPollable(self._ready, self._wait_fd)

    def close(self) -> None:
        pass  # the socket belongs to the udp-socket


class OutgoingDatagrams:
    def __init__(self, owner: UdpSocket) -> None:
        self.owner = owner
        self.permit = 0

    def check_send(self) -> tuple[str, Any]:
        owner = self.owner
        if owner.unix is None:
            return err("invalid-state")
        self.permit = SEND_PERMIT if fd_ready(owner.unix.fileno(), select.POLLOUT) else 0
        return ok(self.permit)

    def send(self, datagrams: list[tuple[bytes, Any]]) -> tuple[str, Any]:
        if len(datagrams) > self.permit:
            raise ValueError(f"udp send of {len(datagrams)} datagrams, but check-send permitted {self.permit}")
        self.permit -= len(datagrams)
        sent = 0
        for data, address in datagrams:
            try:
                self._send_one(data, address)
            except SocketError as exc:
                if sent == 0:
                    return err(exc.code)
                break
            except BlockingIOError:
                break
            sent += 1
        return ok(sent)

    def _send_one(self, data: bytes, address: tuple[str, Any] | None) -> None:
        owner = self.owner
        if address is None:
            if owner.remote is None:
                raise SocketError("invalid-argument")
            target = owner.remote
        else:
            target = SockAddr.from_wit(address)
            check_remote(owner.family, target)
            if owner.remote is not None and target != owner.remote:
                raise SocketError("invalid-argument")
        if len(data) > MAX_DATAGRAM:
            raise SocketError("datagram-too-large")
        try:
            if target.ip.is_loopback:
                self._send_loopback(data, target)
            elif not owner.session.policy.may_reach(target.ip):
                raise SocketError("access-denied")
            else:
                owner.inet_socket().sendto(data, target.os_address())
        except BlockingIOError:
            raise
        except OSError as exc:
            raise SocketError(error_code(exc)) from None

    def _send_loopback(self, data: bytes, target: SockAddr) -> None:
        owner = self.owner
        assert owner.unix is not None
        try:
            owner.session.loopback.sendto(owner.unix, data, "udp", target.port)
        except (FileNotFoundError, ConnectionRefusedError):
            if owner.session.policy.host_loopback_allowed(target.port, "udp"):
                owner.inet_socket().sendto(data, target.os_address())
            # else: nobody listens on the private loopback, and UDP drops silently

    def subscribe(self) -> io.Pollable:
        owner = self.owner
        if owner.unix is None:
            return io.Pollable()
        fd = owner.unix.fileno()
        return io.CallbackPollable(lambda: fd_ready(fd, select.POLLOUT), lambda: (fd, select.POLLOUT))

    def close(self) -> None:
        pass


def create(family: str) -> tuple[str, Any]:
    """wasi:sockets/udp-create-socket.create-udp-socket (no OS socket until bind)."""
    return ok(UdpSocket(family, session()))


FUNCTIONS: dict[str, Any] = {
    **{
        f"[method]udp-socket.{name.replace('_', '-')}": getattr(UdpSocket, name)
        for name in ("start_bind", "finish_bind", "local_address", "remote_address", "address_family",
                     "unicast_hop_limit", "set_unicast_hop_limit", "receive_buffer_size",
                     "set_receive_buffer_size", "send_buffer_size", "set_send_buffer_size", "subscribe")
    },
    "[method]udp-socket.stream": UdpSocket.stream,
    "[method]incoming-datagram-stream.receive": IncomingDatagrams.receive,
    "[method]incoming-datagram-stream.subscribe": IncomingDatagrams.subscribe,
    "[method]outgoing-datagram-stream.check-send": OutgoingDatagrams.check_send,
    "[method]outgoing-datagram-stream.send": OutgoingDatagrams.send,
    "[method]outgoing-datagram-stream.subscribe": OutgoingDatagrams.subscribe,
}
