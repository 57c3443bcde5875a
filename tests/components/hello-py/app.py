"""A wasi:http guest in Python (componentize-py), used by the runtime's tests and benchmarks.

Paths: /  hello | /status  201 + x-status | /headers  request headers echoed | /echo  body echoed
/count  a per-instance counter (shows warm reuse) | /fetch?url=http://host:port/path  outgoing GET
/trap  uncaught exception | /loop  infinite loop | /bomb  allocates until memory runs out
"""

from componentize_py_types import Err, Ok
from wit_world import exports
from wit_world.imports import outgoing_handler
from wit_world.imports.streams import StreamError_Closed
from wit_world.imports.types import (
    Fields,
    IncomingRequest,
    OutgoingBody,
    OutgoingRequest,
    OutgoingResponse,
    ResponseOutparam,
    Scheme_Http,
)

COUNT = 0


def read_all(stream) -> bytes:
    chunks = []
    while True:
        try:
            chunks.append(stream.blocking_read(65536))
        except Err as e:
            if isinstance(e.value, StreamError_Closed):
                return b"".join(chunks)
            raise


def write_all(stream, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = stream.check_write()
        if n == 0:
            with stream.subscribe() as p:
                p.block()
            continue
        stream.write(bytes(view[:n]))
        view = view[n:]
    stream.blocking_flush()


def respond(out: ResponseOutparam, status: int, body: bytes, headers=None) -> None:
    fields = Fields.from_list(headers or [("content-type", b"text/plain"), ("x-guest", b"python")])
    resp = OutgoingResponse(fields)
    resp.set_status_code(status)
    body_res = resp.body()
    ResponseOutparam.set(out, Ok(resp))
    with body_res.write() as stream:
        write_all(stream, body)
    OutgoingBody.finish(body_res, None)


def fetch(url: str) -> tuple[int, bytes]:
    rest = url.split("://", 1)[1]
    authority, _, path = rest.partition("/")
    req = OutgoingRequest(Fields())
    req.set_scheme(Scheme_Http())
    req.set_authority(authority)
    req.set_path_with_query("/" + path)
    future = outgoing_handler.handle(req, None)
    with future.subscribe() as p:
        p.block()
    result = future.get()
    if isinstance(result.value, Err):
        raise result.value
    resp = result.value.value
    body = resp.consume()
    with body.stream() as s:
        data = read_all(s)
    return resp.status(), data


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request: IncomingRequest, response_out: ResponseOutparam) -> None:
        global COUNT
        path = request.path_with_query() or "/"
        if path.startswith("/trap"):
            raise RuntimeError("guest trap requested")
        if path.startswith("/loop"):
            while True:
                pass
        if path.startswith("/bomb"):
            hoard = []
            while True:
                hoard.append(bytearray(8 << 20))
        if path.startswith("/status"):
            respond(response_out, 201, b"", [("x-status", b"created")])
        elif path.startswith("/headers"):
            with request.headers() as h:
                entries = h.entries()
            respond(response_out, 200, b"", entries)
        elif path.startswith("/echo"):
            body = request.consume()
            with body.stream() as s:
                data = read_all(s)
            respond(response_out, 200, data, [("content-type", b"application/octet-stream")])
        elif path.startswith("/count"):
            COUNT += 1
            respond(response_out, 200, str(COUNT).encode())
        elif path.startswith("/fetch"):
            url = path.split("url=", 1)[1]
            try:
                status, data = fetch(url)
            except Err as e:
                respond(response_out, 502, f"fetch failed: {type(e.value).__name__}".encode())
                return
            respond(response_out, 200, f"{status} ".encode() + data)
        else:
            respond(response_out, 200, b"hello from python\n")
