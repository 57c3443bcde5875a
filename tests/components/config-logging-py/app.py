"""A wasi:http guest (componentize-py) calling every function of wasi:config/store@0.2.0-rc.1 and
wasi:logging/logging@0.1.0-draft, for tests/integration/test_config_logging_plugins.py.

Paths: /get?key=K  JSON {"key": K, "value": value or null} (Ok(none) -> null; Err -> 500 with the case)
/all  JSON object of get-all | /log?level=L&context=C&message=M  one record, answers "logged"
/levels  one record per level (trace..critical), context "levels", message "<level> record"
"""

import json
from urllib.parse import parse_qs, urlsplit

from componentize_py_types import Err, Ok
from wit_world import exports
from wit_world.imports import logging, store
from wit_world.imports.types import Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam

LEVELS = {
    "trace": logging.Level.TRACE,
    "debug": logging.Level.DEBUG,
    "info": logging.Level.INFO,
    "warn": logging.Level.WARN,
    "error": logging.Level.ERROR,
    "critical": logging.Level.CRITICAL,
}


def respond(out: ResponseOutparam, status: int, body: bytes) -> None:
    resp = OutgoingResponse(Fields.from_list([("content-type", b"application/json")]))
    resp.set_status_code(status)
    body_res = resp.body()
    ResponseOutparam.set(out, Ok(resp))
    with body_res.write() as stream:
        view = memoryview(body)
        while view:
            n = stream.check_write()
            if n == 0:
                with stream.subscribe() as p:
                    p.block()
                continue
            stream.write(bytes(view[:n]))
            view = view[n:]
        stream.blocking_flush()
    OutgoingBody.finish(body_res, None)


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request: IncomingRequest, response_out: ResponseOutparam) -> None:
        url = urlsplit(request.path_with_query() or "/")
        query = {k: v[0] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        try:
            if url.path == "/get":
                value = store.get(query["key"])
                respond(response_out, 200, json.dumps({"key": query["key"], "value": value}).encode())
            elif url.path == "/all":
                respond(response_out, 200, json.dumps(dict(store.get_all())).encode())
            elif url.path == "/log":
                logging.log(LEVELS[query["level"]], query.get("context", ""), query.get("message", ""))
                respond(response_out, 200, b'"logged"')
            elif url.path == "/levels":
                for name, level in LEVELS.items():
                    logging.log(level, "levels", f"{name} record")
                respond(response_out, 200, b'"logged"')
            else:
                respond(response_out, 404, b'"unknown path"')
        except Err as e:
            respond(response_out, 500, json.dumps({"error": type(e.value).__name__}).encode())
