"""A wasi:http guest (componentize-py) calling every function of wasi:blobstore@0.2.0-draft, for
tests/host/test_blobstore_plugin.py and bench/blobstore_bench.py. One route per operation.

Query parameters: c container, o object (names), answers JSON unless said otherwise. A blobstore
error(string) answers 422 {"error": "<the string>"}; anything else going wrong traps (500).

  /create?c=  /get?c= ({"name", "info": {"name", "created_at"}})  /delete-container?c=  /exists?c=
  /copy?sc=&so=&dc=&do=  /move?sc=&so=&dc=&do=
  /write?c=&o=[&late=1]  the request body, streamed into an outgoing-value (write-data before the
        body is written; late=1: after) -> {"written": bytes}
  /read?c=&o=[&start=&end=]  the object's bytes (get-data, consume-async, streamed to the body);
        header x-size: incoming-value.size()
  /read-sync?c=&o=[&start=&end=]  the same through consume-sync
  /list?c=&page=N[&skip=K]  skip-stream-object-names(K) then pages of N
        -> {"skipped", "skip_end", "pages": [[names], ...], "end_flags": [...]}
  /delete-object?c=&o=  /delete-objects?c=&o=a,b  /has?c=&o=  /info?c=&o=  /clear?c=
  /double-body?c=&o=  outgoing-value-write-body twice: the second must be an error -> {"second": "error"}
  /unfinished?c=&o=  writes, then drops the outgoing-value without finish -> {"dropped": true}
  /write-splice?c=&o=  /read-splice?c=&o=  like /write and /read, but the bytes never enter the
        guest (output-stream.blocking-splice); only in the blobstore-splice-py build, where the
        blobstore streams and the HTTP bodies are the same wasi:io (bench/blobstore_bench.py)
"""

import json
from urllib.parse import parse_qs, urlsplit

from componentize_py_types import Err, Ok
from wit_world import exports
from wit_world.imports import blobstore, wasi_blobstore_types
from wit_world.imports.wasi_http_types import (
    Fields,
    IncomingBody,
    IncomingRequest,
    OutgoingBody,
    OutgoingResponse,
    ResponseOutparam,
)

CHUNK = 1 << 20
U64_MAX = (1 << 64) - 1


def write_all(stream, data: bytes) -> None:
    """Writes `data` to a wasi:io output-stream (either version), waiting when it is full."""
    view = memoryview(data)
    while view:
        n = stream.check_write()
        if n == 0:
            with stream.subscribe() as p:
                p.block()
            continue
        stream.write(bytes(view[:n]))
        view = view[n:]


def respond(out: ResponseOutparam, status: int, body: bytes, headers=(), content_type=b"application/json") -> None:
    resp = OutgoingResponse(Fields.from_list([("content-type", content_type), *headers]))
    resp.set_status_code(status)
    body_res = resp.body()
    ResponseOutparam.set(out, Ok(resp))
    with body_res.write() as stream:
        write_all(stream, body)
        stream.blocking_flush()
    OutgoingBody.finish(body_res, None)


def answer(out: ResponseOutparam, value) -> None:
    respond(out, 200, json.dumps(value).encode())


def read_request_body(request: IncomingRequest):
    """Yields the request body in chunks (wasi:io 0.2.12 input-stream)."""
    body = request.consume()
    with body.stream() as stream:
        while True:
            try:
                chunk = stream.blocking_read(CHUNK)
            except Err:
                break  # closed: the body is complete
            if chunk:
                yield chunk
    IncomingBody.finish(body)


def write_object(request: IncomingRequest, c: str, o: str, late: bool) -> int:
    container = blobstore.get_container(c)
    value = wasi_blobstore_types.OutgoingValue.new_outgoing_value()
    if not late:
        container.write_data(o, value)
    written = 0
    with value.outgoing_value_write_body() as stream:
        for chunk in read_request_body(request):
            write_all(stream, chunk)
            written += len(chunk)
        stream.blocking_flush()
    if late:
        container.write_data(o, value)
    wasi_blobstore_types.OutgoingValue.finish(value)
    return written


def write_object_splice(request: IncomingRequest, c: str, o: str) -> int:
    container = blobstore.get_container(c)
    value = wasi_blobstore_types.OutgoingValue.new_outgoing_value()
    container.write_data(o, value)
    written = 0
    body = request.consume()
    with body.stream() as source, value.outgoing_value_write_body() as sink:
        while True:
            try:
                written += sink.blocking_splice(source, CHUNK)
            except Err:
                break  # the request body is complete
        sink.blocking_flush()
    IncomingBody.finish(body)
    wasi_blobstore_types.OutgoingValue.finish(value)
    return written


def splice_object(out: ResponseOutparam, c: str, o: str) -> None:
    value = blobstore.get_container(c).get_data(o, 0, U64_MAX)
    size = value.size()
    source = wasi_blobstore_types.IncomingValue.incoming_value_consume_async(value)
    resp = OutgoingResponse(Fields.from_list([("content-type", b"application/octet-stream"),
                                              ("x-size", str(size).encode())]))
    body_res = resp.body()
    ResponseOutparam.set(out, Ok(resp))
    with body_res.write() as sink, source:
        while True:
            try:
                sink.blocking_splice(source, CHUNK)
            except Err:
                break
        sink.blocking_flush()
    OutgoingBody.finish(body_res, None)


def read_range(query) -> tuple[int, int]:
    return int(query.get("start", "0")), int(query.get("end", str(U64_MAX)))


def stream_object(out: ResponseOutparam, c: str, o: str, start: int, end: int) -> None:
    container = blobstore.get_container(c)
    value = container.get_data(o, start, end)
    size = value.size()
    source = wasi_blobstore_types.IncomingValue.incoming_value_consume_async(value)
    resp = OutgoingResponse(Fields.from_list([("content-type", b"application/octet-stream"),
                                              ("x-size", str(size).encode())]))
    body_res = resp.body()
    ResponseOutparam.set(out, Ok(resp))
    with body_res.write() as sink, source:
        while True:
            try:
                chunk = source.blocking_read(CHUNK)
            except Err:
                break
            write_all(sink, chunk)
        sink.blocking_flush()
    OutgoingBody.finish(body_res, None)


def list_names(c: str, page: int, skip: int) -> dict:
    container = blobstore.get_container(c)
    result = {"skipped": 0, "skip_end": False, "pages": [], "end_flags": []}
    with container.list_objects() as names:
        if skip:
            result["skipped"], result["skip_end"] = names.skip_stream_object_names(skip)
        while True:
            got, end = names.read_stream_object_names(page)
            result["pages"].append(got)
            result["end_flags"].append(end)
            if end or len(result["pages"]) > 10000:
                break
    return result


def object_id(query, prefix: str):
    return wasi_blobstore_types.ObjectId(query[prefix + "c"], query[prefix + "o"])


def handle(path: str, query: dict, request: IncomingRequest, out: ResponseOutparam) -> None:
    c, o = query.get("c", ""), query.get("o", "")
    if path == "/create":
        container = blobstore.create_container(c)
        answer(out, {"name": container.name()})
    elif path == "/get":
        container = blobstore.get_container(c)
        info = container.info()
        answer(out, {"name": container.name(), "info": {"name": info.name, "created_at": info.created_at}})
    elif path == "/delete-container":
        blobstore.delete_container(c)
        answer(out, {"deleted": c})
    elif path == "/exists":
        answer(out, {"exists": blobstore.container_exists(c)})
    elif path == "/copy":
        blobstore.copy_object(object_id(query, "s"), object_id(query, "d"))
        answer(out, {"copied": True})
    elif path == "/move":
        blobstore.move_object(object_id(query, "s"), object_id(query, "d"))
        answer(out, {"moved": True})
    elif path == "/write":
        answer(out, {"written": write_object(request, c, o, query.get("late") == "1")})
    elif path == "/write-splice":
        answer(out, {"written": write_object_splice(request, c, o)})
    elif path == "/read-splice":
        splice_object(out, c, o)
    elif path == "/read":
        start, end = read_range(query)
        stream_object(out, c, o, start, end)
    elif path == "/read-sync":
        start, end = read_range(query)
        value = blobstore.get_container(c).get_data(o, start, end)
        size = value.size()
        data = wasi_blobstore_types.IncomingValue.incoming_value_consume_sync(value)
        respond(out, 200, data, headers=[("x-size", str(size).encode())], content_type=b"application/octet-stream")
    elif path == "/list":
        answer(out, list_names(c, int(query.get("page", "100")), int(query.get("skip", "0"))))
    elif path == "/delete-object":
        blobstore.get_container(c).delete_object(o)
        answer(out, {"deleted": o})
    elif path == "/delete-objects":
        names = [n for n in o.split(",") if n]
        blobstore.get_container(c).delete_objects(names)
        answer(out, {"deleted": names})
    elif path == "/has":
        answer(out, {"has": blobstore.get_container(c).has_object(o)})
    elif path == "/info":
        meta = blobstore.get_container(c).object_info(o)
        answer(out, {"name": meta.name, "container": meta.container, "created_at": meta.created_at,
                     "size": meta.size})
    elif path == "/clear":
        blobstore.get_container(c).clear()
        answer(out, {"cleared": c})
    elif path == "/double-body":
        value = wasi_blobstore_types.OutgoingValue.new_outgoing_value()
        first = value.outgoing_value_write_body()
        try:
            value.outgoing_value_write_body()
            second = "ok"
        except Err:
            second = "error"
        first.__exit__(None, None, None)
        value.__exit__(None, None, None)
        answer(out, {"second": second})
    elif path == "/unfinished":
        container = blobstore.get_container(c)
        value = wasi_blobstore_types.OutgoingValue.new_outgoing_value()
        container.write_data(o, value)
        with value.outgoing_value_write_body() as stream:
            write_all(stream, b"never committed")
            stream.blocking_flush()
        value.__exit__(None, None, None)
        answer(out, {"dropped": True})
    else:
        respond(out, 404, b'"unknown path"')


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request: IncomingRequest, response_out: ResponseOutparam) -> None:
        url = urlsplit(request.path_with_query() or "/")
        query = {k: v[0] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        try:
            handle(url.path, query, request, response_out)
        except Err as e:
            respond(response_out, 422, json.dumps({"error": e.value}).encode())
