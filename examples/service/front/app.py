"""The example's HTTP component (componentize-py, world wasmfleet:service-example/front): for each
request it asks the workload's service over TCP on 127.0.0.1:7000 and answers with the reply.

  GET /                -> "incr hits"        GET /incr/KEY        -> "incr KEY"
  GET /get/KEY         -> "get KEY"          GET /set/KEY/VALUE   -> "set KEY VALUE"

The path's segments become the command line (the service answers "error: ..." to anything else).
200 with the service's answer line; 502 naming the wasi:sockets error when the service cannot be
reached (not started yet, or another workload's component trying: each workload has its own
private loopback).
"""

from urllib.parse import unquote

from componentize_py_types import Err, Ok
from wit_world import exports
from wit_world.imports import instance_network, network, poll, streams, tcp_create_socket
from wit_world.imports.network import IpAddressFamily
from wit_world.imports.types import Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam

SERVICE = network.IpSocketAddress_Ipv4(network.Ipv4SocketAddress(port=7000, address=(127, 0, 0, 1)))


def code(exc: Err) -> str:
    value = exc.value
    if isinstance(value, network.ErrorCode):
        return value.name.lower().replace("_", "-")
    return repr(value)


def ask(line: str) -> str:
    """One conversation with the service: connect, send the line, read the answer line, close."""
    sock = tcp_create_socket.create_tcp_socket(IpAddressFamily.IPV4)
    sock.start_connect(instance_network.instance_network(), SERVICE)
    while True:
        try:
            rx, tx = sock.finish_connect()
            break
        except Err as exc:
            if code(exc) != "would-block":
                raise
            poll.poll([sock.subscribe()])
    try:
        data = (line + "\n").encode()
        while data:
            budget = tx.check_write()
            if budget == 0:
                poll.poll([tx.subscribe()])
                continue
            tx.write(data[:budget])
            data = data[budget:]
        tx.flush()
        answer = b""
        while b"\n" not in answer:
            try:
                chunk = rx.read(4096)
            except Err as exc:
                if isinstance(exc.value, streams.StreamError_Closed):
                    break
                raise
            if not chunk:
                poll.poll([rx.subscribe()])
            answer += chunk
        return answer.split(b"\n", 1)[0].decode(errors="replace")
    finally:
        # Child streams go before their socket (the WIT requires it); the service then sees the end.
        rx.__exit__(None, None, None)
        tx.__exit__(None, None, None)
        sock.__exit__(None, None, None)


def respond(out: ResponseOutparam, status: int, body: str) -> None:
    resp = OutgoingResponse(Fields.from_list([("content-type", b"text/plain")]))
    resp.set_status_code(status)
    body_res = resp.body()
    ResponseOutparam.set(out, Ok(resp))
    with body_res.write() as stream:
        stream.blocking_write_and_flush((body + "\n").encode())
    OutgoingBody.finish(body_res, None)


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request: IncomingRequest, response_out: ResponseOutparam) -> None:
        path = (request.path_with_query() or "/").split("?", 1)[0]
        words = [unquote(w) for w in path.split("/") if w]
        line = " ".join(words) if words else "incr hits"
        try:
            respond(response_out, 200, ask(line))
        except Err as exc:
            respond(response_out, 502, f"service unreachable on 127.0.0.1:7000: {code(exc)}")
