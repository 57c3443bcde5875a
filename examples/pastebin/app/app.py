"""A paste bin (componentize-py): the pastes live in wasi:blobstore, their numbers and view counts in
wasi:keyvalue, so every replica serves every paste.

  POST /      the request body becomes a paste -> 201, "/<n>" (also in Location)
  GET /<n>    the paste, streamed from the blobstore; header x-views: its reads so far, this one included
  GET /       how many pastes there are ("pastes: <n>")
Anything else is 404 (no such paste) or 405.
"""

from componentize_py_types import Err, Ok
from wit_world import exports
from wit_world.imports import atomics, blobstore, store, wasi_blobstore_types
from wit_world.imports.wasi_http_types import (
    Fields,
    IncomingBody,
    IncomingRequest,
    Method_Get,
    Method_Post,
    OutgoingBody,
    OutgoingResponse,
    ResponseOutparam,
)

CONTAINER = "pastes"
"""The blobstore container of the pastes (on a fleet host: a JetStream Object Store bucket)."""
BUCKET = "pastebin"
"""The keyvalue bucket of the counters: next-id, and views.<n> per paste (JetStream KV keys take no ":")."""
CHUNK = 64 * 1024
U64_MAX = (1 << 64) - 1


def write_all(stream, data: bytes) -> None:
    """Writes `data` to a wasi:io output-stream (either version), waiting while it is full."""
    view = memoryview(data)
    while view:
        n = stream.check_write()
        if n == 0:
            with stream.subscribe() as ready:
                ready.block()
            continue
        stream.write(bytes(view[:n]))
        view = view[n:]


def copy(source, sink) -> None:
    """Copies a wasi:io input-stream to an output-stream chunk by chunk: a large paste is never held
    whole, in the guest or the host."""
    while True:
        try:
            chunk = source.blocking_read(CHUNK)
        except Err:
            break  # the source is complete
        write_all(sink, chunk)
    sink.blocking_flush()


def respond(out: ResponseOutparam, status: int, text: str, headers=()) -> None:
    response = OutgoingResponse(Fields.from_list([("content-type", b"text/plain"), *headers]))
    response.set_status_code(status)
    body = response.body()
    ResponseOutparam.set(out, Ok(response))
    with body.write() as stream:
        write_all(stream, text.encode())
        stream.blocking_flush()
    OutgoingBody.finish(body, None)


def pastes():
    """The container, created by the first paste (another replica may create it at the same time)."""
    try:
        return blobstore.get_container(CONTAINER)
    except Err:
        try:
            return blobstore.create_container(CONTAINER)
        except Err:
            return blobstore.get_container(CONTAINER)


def create(request: IncomingRequest, out: ResponseOutparam) -> None:
    number = atomics.increment(store.open(BUCKET), "next-id", 1)
    value = wasi_blobstore_types.OutgoingValue.new_outgoing_value()
    pastes().write_data(str(number), value)
    body = request.consume()
    with body.stream() as source, value.outgoing_value_write_body() as sink:
        copy(source, sink)
    IncomingBody.finish(body)
    wasi_blobstore_types.OutgoingValue.finish(value)
    respond(out, 201, f"/{number}\n", [("location", f"/{number}".encode())])


def show(name: str, out: ResponseOutparam) -> None:
    container = pastes()
    if not container.has_object(name):
        respond(out, 404, f"no paste /{name}\n")
        return
    views = atomics.increment(store.open(BUCKET), f"views.{name}", 1)
    value = container.get_data(name, 0, U64_MAX)
    source = wasi_blobstore_types.IncomingValue.incoming_value_consume_async(value)
    response = OutgoingResponse(Fields.from_list([("content-type", b"text/plain"),
                                                  ("x-views", str(views).encode())]))
    body = response.body()
    ResponseOutparam.set(out, Ok(response))
    with body.write() as sink, source:
        copy(source, sink)
    OutgoingBody.finish(body, None)


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request: IncomingRequest, response_out: ResponseOutparam) -> None:
        path = (request.path_with_query() or "/").split("?", 1)[0]
        method = request.method()
        if path == "/" and isinstance(method, Method_Post):
            create(request, response_out)
        elif path == "/" and isinstance(method, Method_Get):
            count = atomics.increment(store.open(BUCKET), "next-id", 0)
            respond(response_out, 200, f"pastes: {count}\n")
        elif isinstance(method, Method_Get) and path[1:].isdigit():
            show(path[1:], response_out)
        elif isinstance(method, Method_Get):
            respond(response_out, 404, f"no paste {path}\n")
        else:
            respond(response_out, 405, "GET /<n> reads a paste, POST / makes one\n")
