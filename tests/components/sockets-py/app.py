"""A wasi:cli command (componentize-py) exercising wasi:sockets 0.2 through its generated bindings.

Usage: sockets-py MODE ARGS... ; prints one line per result on stdout (flushed), and
"error: <error-code>" when a call fails with a wasi:sockets error. Every wait goes through
wasi:io/poll (subscribe + poll), never a blocking call on a socket.

  tcp-echo-server PORT COUNT [ipv6]   listen on 0.0.0.0:PORT (or [::]), print "listening PORT",
                                      echo COUNT connections (each until the client shuts down)
  tcp-client HOST PORT MESSAGE        connect (HOST: IP or name, looked up), send MESSAGE, shut down
                                      sending, print "reply: ...", "local: ..." and "remote: ..."
  udp-echo-server PORT COUNT          bind 0.0.0.0:PORT, print "listening PORT", echo COUNT datagrams
  udp-client HOST PORT MESSAGE        send one datagram, print "reply: ..." (or "timeout")
  lookup NAME                         print "address: ..." per address of NAME
  bind PORT                           bind and listen on PORT, print "bound PORT" (or the error)
  bind-twice PORT                     bind PORT twice in this guest: print the second bind's result
  options                             set and read back every option; check state errors
  backlog CLIENTS                     CLIENTS connects to a backlog-1 listener that accepts late
  bench-client PORT ROUNDS SIZE       ROUNDS echo round trips of SIZE bytes; print the timings
"""

import sys
import time

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import (
    environment,
    instance_network,
    ip_name_lookup,
    monotonic_clock,
    network,
    poll,
    streams,
    tcp,
    tcp_create_socket,
    udp,
    udp_create_socket,
)
from wit_world.imports.network import IpAddressFamily


def say(*parts: object) -> None:
    print(*parts, flush=True)


def code(exc: Err) -> str:
    value = exc.value
    if isinstance(value, network.ErrorCode):
        return value.name.lower().replace("_", "-")
    return repr(value)


def wait(pollable: poll.Pollable) -> None:
    poll.poll([pollable])


def v4(port: int, address: tuple[int, int, int, int] = (0, 0, 0, 0)) -> network.IpSocketAddress:
    return network.IpSocketAddress_Ipv4(network.Ipv4SocketAddress(port=port, address=address))


def v6(port: int, address: tuple[int, ...] = (0,) * 8) -> network.IpSocketAddress:
    return network.IpSocketAddress_Ipv6(network.Ipv6SocketAddress(port=port, flow_info=0, address=address, scope_id=0))


def show(addr: network.IpSocketAddress) -> str:
    if isinstance(addr, network.IpSocketAddress_Ipv4):
        return ".".join(map(str, addr.value.address)) + f":{addr.value.port}"
    return "[" + ":".join(f"{w:x}" for w in addr.value.address) + f"]:{addr.value.port}"


def show_ip(ip: network.IpAddress) -> str:
    if isinstance(ip, network.IpAddress_Ipv4):
        return ".".join(map(str, ip.value))
    return ":".join(f"{w:x}" for w in ip.value)


def resolve(net: network.Network, host: str) -> list[network.IpAddress]:
    stream = ip_name_lookup.resolve_addresses(net, host)
    found = []
    while True:
        try:
            ip = stream.resolve_next_address()
        except Err as exc:
            if code(exc) == "would-block":
                wait(stream.subscribe())
                continue
            raise
        if ip is None:
            return found
        found.append(ip)


def target(net: network.Network, host: str, port: int) -> network.IpSocketAddress:
    ip = resolve(net, host)[0]
    if isinstance(ip, network.IpAddress_Ipv4):
        return v4(port, ip.value)
    return v6(port, ip.value)


def bind_listen(net: network.Network, addr: network.IpSocketAddress, family: IpAddressFamily) -> tcp.TcpSocket:
    sock = tcp_create_socket.create_tcp_socket(family)
    sock.start_bind(net, addr)
    sock.finish_bind()
    sock.start_listen()
    sock.finish_listen()
    return sock


def read_some(stream: streams.InputStream) -> bytes | None:
    """What is available (waiting through poll when nothing is), None at the end."""
    while True:
        try:
            data = stream.read(65536)
        except Err as exc:
            if isinstance(exc.value, streams.StreamError_Closed):
                return None
            raise
        if data:
            return data
        wait(stream.subscribe())


def write_all(stream: streams.OutputStream, data: bytes) -> None:
    view = memoryview(data)
    while view:
        budget = stream.check_write()
        if budget == 0:
            wait(stream.subscribe())
            continue
        chunk = bytes(view[:budget])
        stream.write(chunk)
        view = view[len(chunk):]
    stream.flush()
    wait(stream.subscribe())


def connect(
    net: network.Network, addr: network.IpSocketAddress
) -> tuple[tcp.TcpSocket, streams.InputStream, streams.OutputStream]:
    family = IpAddressFamily.IPV4 if isinstance(addr, network.IpSocketAddress_Ipv4) else IpAddressFamily.IPV6
    sock = tcp_create_socket.create_tcp_socket(family)
    sock.start_connect(net, addr)
    while True:
        try:
            rx, tx = sock.finish_connect()
            return sock, rx, tx
        except Err as exc:
            if code(exc) != "would-block":
                raise
            wait(sock.subscribe())


def tcp_echo_server(net: network.Network, port: int, count: int, ipv6: bool) -> None:
    if ipv6:
        listener = bind_listen(net, v6(port), IpAddressFamily.IPV6)
    else:
        listener = bind_listen(net, v4(port), IpAddressFamily.IPV4)
    say("listening", show(listener.local_address()))
    for _ in range(count):
        while True:
            try:
                client, rx, tx = listener.accept()
                break
            except Err as exc:
                if code(exc) != "would-block":
                    raise
                wait(listener.subscribe())
        say("accepted", show(client.remote_address()), "on", show(client.local_address()))
        while (data := read_some(rx)) is not None:
            write_all(tx, data)
        client.shutdown(tcp.ShutdownType.SEND)
        rx.__exit__(None, None, None)
        tx.__exit__(None, None, None)
        client.__exit__(None, None, None)
    say("done")


def tcp_client(net: network.Network, host: str, port: int, message: str) -> None:
    sock, rx, tx = connect(net, target(net, host, port))
    say("local:", show(sock.local_address()))
    say("remote:", show(sock.remote_address()))
    write_all(tx, message.encode())
    sock.shutdown(tcp.ShutdownType.SEND)
    got = b""
    while (data := read_some(rx)) is not None:
        got += data
    say("reply:", got.decode())


def udp_echo_server(net: network.Network, port: int, count: int) -> None:
    sock = udp_create_socket.create_udp_socket(IpAddressFamily.IPV4)
    sock.start_bind(net, v4(port))
    sock.finish_bind()
    rx, tx = sock.stream(None)
    say("listening", show(sock.local_address()))
    echoed = 0
    while echoed < count:
        got = rx.receive(16)
        if not got:
            wait(rx.subscribe())
            continue
        for datagram in got:
            while tx.check_send() == 0:
                wait(tx.subscribe())
            tx.send([udp.OutgoingDatagram(data=datagram.data, remote_address=datagram.remote_address)])
            say("echoed", show(datagram.remote_address))
            echoed += 1
    say("done")


def udp_client(net: network.Network, host: str, port: int, message: str) -> None:
    sock = udp_create_socket.create_udp_socket(IpAddressFamily.IPV4)
    sock.start_bind(net, v4(0))
    sock.finish_bind()
    rx, tx = sock.stream(target(net, host, port))
    say("local:", show(sock.local_address()))
    while tx.check_send() == 0:
        wait(tx.subscribe())
    sent = tx.send([udp.OutgoingDatagram(data=message.encode(), remote_address=None)])
    say("sent", sent)
    deadline = monotonic_clock.subscribe_duration(5_000_000_000)
    while True:
        got = rx.receive(1)
        if got:
            say("reply:", got[0].data.decode(), "from", show(got[0].remote_address))
            return
        if deadline.ready():
            say("timeout")
            return
        poll.poll([rx.subscribe(), deadline])


def lookup(net: network.Network, name: str) -> None:
    for ip in resolve(net, name):
        say("address:", show_ip(ip))


def bind(net: network.Network, port: int) -> None:
    sock = bind_listen(net, v4(port, (127, 0, 0, 1)), IpAddressFamily.IPV4)
    say("bound", show(sock.local_address()))


def bind_twice(net: network.Network, port: int) -> None:
    first = bind_listen(net, v4(port), IpAddressFamily.IPV4)
    say("first", show(first.local_address()))
    second = tcp_create_socket.create_tcp_socket(IpAddressFamily.IPV4)
    try:
        second.start_bind(net, v4(port, (127, 0, 0, 1)))
        say("second bound")
    except Err as exc:
        say("second:", code(exc))
    first.__exit__(None, None, None)
    third = tcp_create_socket.create_tcp_socket(IpAddressFamily.IPV4)
    third.start_bind(net, v4(port))
    third.finish_bind()
    say("after drop:", show(third.local_address()))


def expect_error(label: str, call) -> None:  # type: ignore[no-untyped-def]
    try:
        call()
        say(label, "ok")
    except Err as exc:
        say(label, code(exc))


def options(net: network.Network) -> None:
    sock = tcp_create_socket.create_tcp_socket(IpAddressFamily.IPV4)
    say("family", sock.address_family().name.lower())
    sock.set_keep_alive_enabled(True)
    sock.set_keep_alive_idle_time(30_000_000_000)
    sock.set_keep_alive_interval(5_000_000_000)
    sock.set_keep_alive_count(3)
    sock.set_hop_limit(32)
    sock.set_receive_buffer_size(65536)
    sock.set_send_buffer_size(32768)
    sock.set_listen_backlog_size(10)
    say("keep-alive", sock.keep_alive_enabled(), sock.keep_alive_idle_time(), sock.keep_alive_interval(),
        sock.keep_alive_count())
    say("hop-limit", sock.hop_limit())
    say("buffers", sock.receive_buffer_size(), sock.send_buffer_size())
    expect_error("zero-idle", lambda: sock.set_keep_alive_idle_time(0))
    expect_error("zero-count", lambda: sock.set_keep_alive_count(0))
    expect_error("zero-hop", lambda: sock.set_hop_limit(0))
    expect_error("zero-backlog", lambda: sock.set_listen_backlog_size(0))
    expect_error("zero-buffer", lambda: sock.set_receive_buffer_size(0))
    expect_error("accept-unbound", lambda: sock.accept())
    expect_error("listen-unbound", lambda: sock.start_listen())
    expect_error("finish-bind-unstarted", lambda: sock.finish_bind())
    expect_error("finish-connect-unstarted", lambda: sock.finish_connect())
    expect_error("local-unbound", lambda: sock.local_address())
    expect_error("remote-unconnected", lambda: sock.remote_address())
    expect_error("bind-v6-on-v4", lambda: sock.start_bind(net, v6(0)))
    expect_error("bind-public", lambda: sock.start_bind(net, v4(0, (8, 8, 8, 8))))
    expect_error("connect-unspecified", lambda: sock.start_connect(net, v4(80)))
    sock.start_bind(net, v4(0))
    expect_error("bind-again-in-progress", lambda: sock.start_bind(net, v4(0)))
    sock.finish_bind()
    say("listening-before", sock.is_listening())
    sock.start_listen()
    expect_error("finish-bind-after", lambda: sock.finish_bind())
    sock.finish_listen()
    say("listening-after", sock.is_listening())
    port = sock.local_address().value.port
    say("ephemeral", 49152 <= port <= 65535)
    expect_error("shutdown-listener", lambda: sock.shutdown(tcp.ShutdownType.BOTH))
    expect_error("backlog-while-listening", lambda: sock.set_listen_backlog_size(5))
    expect_error("connect-listener", lambda: sock.start_connect(net, v4(port, (127, 0, 0, 1))))
    # A connect in progress: the state machine answers concurrency-conflict / would-block.
    peer = tcp_create_socket.create_tcp_socket(IpAddressFamily.IPV4)
    peer.start_connect(net, v4(port, (127, 0, 0, 1)))
    expect_error("connect-again", lambda: peer.start_connect(net, v4(port, (127, 0, 0, 1))))
    wait(peer.subscribe())
    _streams = peer.finish_connect()  # kept: dropping them would close the connection early
    expect_error("finish-connect-twice", lambda: peer.finish_connect())
    say("peer-keep-alive-default", peer.keep_alive_enabled())
    accepted, *_accepted_streams = sock.accept()
    say("accepted-inherits", accepted.keep_alive_enabled(), accepted.hop_limit(), accepted.keep_alive_count())
    say("peer-remote-is-listener", show(peer.remote_address()) == f"127.0.0.1:{port}")
    say("accepted-remote-is-peer", show(accepted.remote_address()) == show(peer.local_address()))
    u = udp_create_socket.create_udp_socket(IpAddressFamily.IPV6)
    u.set_unicast_hop_limit(7)
    u.set_receive_buffer_size(20000)
    u.set_send_buffer_size(30000)
    say("udp", u.address_family().name.lower(), u.unicast_hop_limit(), u.receive_buffer_size(), u.send_buffer_size())
    expect_error("udp-stream-unbound", lambda: u.stream(None))
    expect_error("udp-zero-hop", lambda: u.set_unicast_hop_limit(0))
    expect_error("udp-local-unbound", lambda: u.local_address())


def backlog(net: network.Network, clients: int) -> None:
    """A listener with backlog 1 that does not accept yet: connects beyond the queue stay
    would-block (polled) until accept makes room."""
    listener = tcp_create_socket.create_tcp_socket(IpAddressFamily.IPV4)
    listener.set_listen_backlog_size(1)
    listener.start_bind(net, v4(0))
    listener.finish_bind()
    listener.start_listen()
    listener.finish_listen()
    port = listener.local_address().value.port
    pending = []
    for _ in range(clients):
        sock = tcp_create_socket.create_tcp_socket(IpAddressFamily.IPV4)
        sock.start_connect(net, v4(port, (127, 0, 0, 1)))
        pending.append(sock)
    done = []
    for sock in list(pending):
        try:
            done.append((sock, sock.finish_connect()))
            pending.remove(sock)
        except Err as exc:
            if code(exc) != "would-block":
                raise
    say("connected-before-accept", len(done), "waiting", len(pending))
    accepted = []
    while len(accepted) < clients:
        try:
            accepted.append(listener.accept())
        except Err as exc:
            if code(exc) != "would-block":
                raise
        for sock in list(pending):
            try:
                done.append((sock, sock.finish_connect()))
                pending.remove(sock)
            except Err as exc:
                if code(exc) != "would-block":
                    raise
        if len(accepted) < clients:
            poll.poll([listener.subscribe(), *(s.subscribe() for s in pending)])
    say("connected", len(done), "accepted", len(accepted))


def bench_client(net: network.Network, port: int, rounds: int, size: int) -> None:
    sock, rx, tx = connect(net, v4(port, (127, 0, 0, 1)))
    payload = b"x" * size
    times = []
    start = time.monotonic_ns()
    for _ in range(rounds):
        t0 = time.monotonic_ns()
        write_all(tx, payload)
        got = 0
        while got < size:
            data = read_some(rx)
            if data is None:
                raise RuntimeError("server closed early")
            got += len(data)
        times.append(time.monotonic_ns() - t0)
    total = time.monotonic_ns() - start
    sock.shutdown(tcp.ShutdownType.SEND)
    times.sort()
    say("median_us", times[len(times) // 2] / 1000)
    say("total_s", total / 1e9)


class Run(exports.Run):
    def run(self) -> None:
        args = environment.get_arguments()[1:]
        net = instance_network.instance_network()
        mode, rest = args[0], args[1:]
        try:
            if mode == "tcp-echo-server":
                tcp_echo_server(net, int(rest[0]), int(rest[1]), len(rest) > 2 and rest[2] == "ipv6")
            elif mode == "tcp-client":
                tcp_client(net, rest[0], int(rest[1]), rest[2])
            elif mode == "udp-echo-server":
                udp_echo_server(net, int(rest[0]), int(rest[1]))
            elif mode == "udp-client":
                udp_client(net, rest[0], int(rest[1]), rest[2])
            elif mode == "lookup":
                lookup(net, rest[0])
            elif mode == "bind":
                bind(net, int(rest[0]))
            elif mode == "bind-twice":
                bind_twice(net, int(rest[0]))
            elif mode == "options":
                options(net)
            elif mode == "backlog":
                backlog(net, int(rest[0]))
            elif mode == "bench-client":
                bench_client(net, int(rest[0]), int(rest[1]), int(rest[2]))
            else:
                say("unknown mode", mode)
                sys.exit(2)
        except Err as exc:
            say("error:", code(exc))
