"""A wasi:http guest (componentize-py) of the third-party test plugin example:greeting/greeter.

Paths: /greet?name=N  the plugin's greeting | /events  the plugin's lifecycle events, one a line
"""

from urllib.parse import parse_qs, urlsplit

from componentize_py_types import Ok
from wit_world import exports
from wit_world.imports import greeter
from wit_world.imports.types import Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam


def respond(out: ResponseOutparam, status: int, body: bytes) -> None:
    resp = OutgoingResponse(Fields.from_list([("content-type", b"text/plain")]))
    resp.set_status_code(status)
    body_res = resp.body()
    ResponseOutparam.set(out, Ok(resp))
    with body_res.write() as stream:
        stream.blocking_write_and_flush(body)
    OutgoingBody.finish(body_res, None)


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request: IncomingRequest, response_out: ResponseOutparam) -> None:
        url = urlsplit(request.path_with_query() or "/")
        if url.path == "/greet":
            name = parse_qs(url.query).get("name", ["world"])[0]
            respond(response_out, 200, greeter.greet(name).encode())
        elif url.path == "/events":
            respond(response_out, 200, "\n".join(greeter.events()).encode())
        else:
            respond(response_out, 404, b"unknown path")
