"""The publisher (componentize-py): an HTTP component asking the transformer over NATS.

GET /?text=hello+world[&timeout_ms=2000]  request on demo.transform, answers the reply's body
GET /publish?text=...                     publish on demo.transform (fire and forget), answers 202
GET /ask?subject=S&text=...&timeout_ms=N  request on any subject (shows the timeout error text)
An error from consumer (timeout, no responders) is answered 502 with its text.
"""

from urllib.parse import parse_qs, urlsplit

from componentize_py_types import Err, Ok
from wit_world import exports
from wit_world.imports import consumer
from wit_world.imports.wasi_http_types import (
    Fields,
    IncomingRequest,
    OutgoingBody,
    OutgoingResponse,
    ResponseOutparam,
)
from wit_world.imports.wasmcloud_messaging_types import BrokerMessage

SUBJECT = "demo.transform"


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
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        text = query.get("text", "hello from wasmfleet").encode()
        timeout_ms = int(query.get("timeout_ms", "2000"))
        try:
            if url.path == "/publish":
                consumer.publish(BrokerMessage(subject=SUBJECT, body=text, reply_to=None))
                respond(response_out, 202, b"published\n")
                return
            subject = query.get("subject", SUBJECT) if url.path == "/ask" else SUBJECT
            reply = consumer.request(subject, text, timeout_ms)
            respond(response_out, 200, reply.body + b"\n")
        except Err as e:
            respond(response_out, 502, f"{e.value}\n".encode())
