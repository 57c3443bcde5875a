"""The example's service (componentize-py, world wasi:cli/command@0.2.12): a tiny TCP server.

It listens on the workload's private loopback (wasi:sockets; a bind to 0.0.0.0 lands there):

  port 7000  a line-based key/value store. One command per line, one answer line each:
               incr KEY          -> the new count (from 0)
               get KEY           -> the value, or "(none)"
               set KEY VALUE...  -> "ok"
             anything else       -> "error: ..."
  port 7001  a byte echo (whatever a client sends comes back), for bench/service_echo_bench.py

Connections are served one after the other (each until its client closes), whichever port is
ready first; every wait goes through wasi:io/poll. It runs until the host stops it.
"""

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import instance_network, network, poll, streams, tcp, tcp_create_socket
from wit_world.imports.network import IpAddressFamily

KV_PORT, ECHO_PORT = 7000, 7001


def listen(net: network.Network, port: int) -> tcp.TcpSocket:
    sock = tcp_create_socket.create_tcp_socket(IpAddressFamily.IPV4)
    addr = network.IpSocketAddress_Ipv4(network.Ipv4SocketAddress(port=port, address=(0, 0, 0, 0)))
    sock.start_bind(net, addr)
    sock.finish_bind()
    sock.start_listen()
    sock.finish_listen()
    return sock


def read_some(rx: streams.InputStream) -> bytes | None:
    """What is available (waiting through poll when nothing is), None once the client closed."""
    while True:
        try:
            data = rx.read(65536)
        except Err as exc:
            if isinstance(exc.value, streams.StreamError_Closed):
                return None
            raise
        if data:
            return data
        poll.poll([rx.subscribe()])


def write_all(tx: streams.OutputStream, data: bytes) -> None:
    view = memoryview(data)
    while view:
        budget = tx.check_write()
        if budget == 0:
            poll.poll([tx.subscribe()])
            continue
        chunk = bytes(view[:budget])
        tx.write(chunk)
        view = view[len(chunk):]
    tx.flush()


class Store:
    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    def answer(self, line: str) -> str:
        words = line.split()
        if len(words) == 2 and words[0] == "incr":
            value = str(int(self.values.get(words[1], "0")) + 1)
            self.values[words[1]] = value
            return value
        if len(words) == 2 and words[0] == "get":
            return self.values.get(words[1], "(none)")
        if len(words) >= 3 and words[0] == "set":
            self.values[words[1]] = " ".join(words[2:])
            return "ok"
        return f"error: unknown command {line.strip()!r} (incr KEY, get KEY, set KEY VALUE)"


def serve_kv(store: Store, rx: streams.InputStream, tx: streams.OutputStream) -> None:
    pending = b""
    while (data := read_some(rx)) is not None:
        pending += data
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            write_all(tx, (store.answer(line.decode(errors="replace")) + "\n").encode())


def serve_echo(rx: streams.InputStream, tx: streams.OutputStream) -> None:
    while (data := read_some(rx)) is not None:
        write_all(tx, data)


class Run(exports.Run):
    def run(self) -> None:
        net = instance_network.instance_network()
        kv, echo = listen(net, KV_PORT), listen(net, ECHO_PORT)
        ready = [kv.subscribe(), echo.subscribe()]
        print(f"service listening on 127.0.0.1:{KV_PORT} (key/value) and 127.0.0.1:{ECHO_PORT} (echo)", flush=True)
        store = Store()
        while True:
            for index in poll.poll(ready):
                try:
                    client, rx, tx = (kv, echo)[index].accept()
                except Err:  # would-block (another poll round) or a client already gone
                    continue
                try:
                    serve_kv(store, rx, tx) if index == 0 else serve_echo(rx, tx)
                except Err as exc:  # a client that went away mid-answer ends its connection only
                    print(f"connection ended: {exc.value}", flush=True)
                # Child streams go before their socket (the WIT requires it).
                rx.__exit__(None, None, None)
                tx.__exit__(None, None, None)
                client.__exit__(None, None, None)
