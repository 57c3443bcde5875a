"""A wasi:http guest (componentize-py) asking a TCP service on its workload's private loopback.

GET /ask?port=P&msg=M  connects to 127.0.0.1:P, sends M, shuts down sending, answers 200 with
                       what came back; 502 "error: <error-code>" when wasi:sockets fails
"""

from urllib.parse import parse_qs, urlsplit

from componentize_py_types import Err, Ok
from wit_world import exports
from wit_world.imports import instance_network, network, poll, streams, tcp, tcp_create_socket
from wit_world.imports.types import Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam


def respond(out: ResponseOutparam, status: int, body: bytes) -> None:
    resp = OutgoingResponse(Fields.from_list([("content-type", b"text/plain")]))
    resp.set_status_code(status)
    body_res = resp.body()
    ResponseOutparam.set(out, Ok(resp))
    with body_res.write() as stream:
        stream.blocking_write_and_flush(body)
    OutgoingBody.finish(body_res, None)


def ask(port: int, message: bytes) -> bytes:
    net = instance_network.instance_network()
    sock = tcp_create_socket.create_tcp_socket(network.IpAddressFamily.IPV4)
    sock.start_connect(net, network.IpSocketAddress_Ipv4(network.Ipv4SocketAddress(port=port, address=(127, 0, 0, 1))))
    while True:
        try:
            rx, tx = sock.finish_connect()
            break
        except Err as exc:
            if exc.value != network.ErrorCode.WOULD_BLOCK:
                raise
            poll.poll([sock.subscribe()])
    tx.blocking_write_and_flush(message)
    sock.shutdown(tcp.ShutdownType.SEND)
    got = b""
    while True:
        try:
            got += rx.blocking_read(65536)
        except Err as exc:
            if isinstance(exc.value, streams.StreamError_Closed):
                return got
            raise


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request: IncomingRequest, response_out: ResponseOutparam) -> None:
        url = urlsplit(request.path_with_query() or "/")
        if url.path != "/ask":
            respond(response_out, 404, b"unknown path")
            return
        query = parse_qs(url.query)
        try:
            reply = ask(int(query["port"][0]), query.get("msg", ["hi"])[0].encode())
        except Err as exc:
            name = exc.value.name.lower().replace("_", "-") if isinstance(exc.value, network.ErrorCode) else "stream"
            respond(response_out, 502, f"error: {name}".encode())
            return
        respond(response_out, 200, reply)
