"""A wasi:http guest (componentize-py) calling every function of wasi:keyvalue/{store,atomics,batch}
@0.2.0-draft, for tests/integration/test_keyvalue_plugin.py.

Every path opens the bucket `id` first. Answers JSON: {"ok": result} or {"error": case, "detail": text}.
Values travel as hex. Paths (query parameters in brackets):
/open  /get [key]  /set [key, value: text]  /delete [key]  /exists [key]  /list [cursor]
/incr [key, delta]  /get-many [keys: comma list]  /set-many [pairs: k=v comma list]
/delete-many [keys]  /fill [prefix, n: set-many of n keys <prefix><index:05>]
/set-large [key, size: a value of `size` bytes, byte i = i % 251]
/check-large [key: {"size": length, "pattern": whether every byte i is i % 251}]
"""

import json
from urllib.parse import parse_qs, urlsplit

from componentize_py_types import Err, Ok
from wit_world import exports
from wit_world.imports import atomics, batch, store
from wit_world.imports.types import Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam


def respond(out: ResponseOutparam, body: bytes) -> None:
    resp = OutgoingResponse(Fields.from_list([("content-type", b"application/json")]))
    resp.set_status_code(200)
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


def error_json(e: Err) -> dict:
    value = e.value
    case = {"Error_NoSuchStore": "no-such-store", "Error_AccessDenied": "access-denied",
            "Error_Other": "other"}.get(type(value).__name__, type(value).__name__)
    return {"error": case, "detail": getattr(value, "value", None)}


def run(path: str, q: dict) -> object:
    bucket = store.open(q.get("id", ""))
    with bucket:
        if path == "/open":
            return "opened"
        if path == "/get":
            value = bucket.get(q["key"])
            return None if value is None else value.hex()
        if path == "/set":
            bucket.set(q["key"], q.get("value", "").encode())
            return None
        if path == "/delete":
            bucket.delete(q["key"])
            return None
        if path == "/exists":
            return bucket.exists(q["key"])
        if path == "/list":
            cursor = int(q["cursor"]) if q.get("cursor") else None
            page = bucket.list_keys(cursor)
            return {"keys": page.keys, "cursor": page.cursor}
        if path == "/incr":
            return atomics.increment(bucket, q["key"], int(q.get("delta", "1")))
        if path == "/get-many":
            found = batch.get_many(bucket, q["keys"].split(","))
            return [None if item is None else [item[0], item[1].hex()] for item in found]
        if path == "/set-many":
            pairs = [p.split("=", 1) for p in q["pairs"].split(",")]
            batch.set_many(bucket, [(k, v.encode()) for k, v in pairs])
            return None
        if path == "/delete-many":
            batch.delete_many(bucket, q["keys"].split(","))
            return None
        if path == "/fill":
            n = int(q["n"])
            batch.set_many(bucket, [(f"{q['prefix']}{i:05}", str(i).encode()) for i in range(n)])
            return n
        if path == "/set-large":
            size = int(q["size"])
            bucket.set(q["key"], bytes(range(251)) * (size // 251) + bytes(range(size % 251)))
            return size
        if path == "/check-large":
            value = bucket.get(q["key"])
            if value is None:
                return None
            expected = bytes(range(251)) * (len(value) // 251) + bytes(range(len(value) % 251))
            return {"size": len(value), "pattern": value == expected}
        raise ValueError(f"unknown path {path}")


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request: IncomingRequest, response_out: ResponseOutparam) -> None:
        url = urlsplit(request.path_with_query() or "/")
        query = {k: v[0] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        try:
            answer = {"ok": run(url.path, query)}
        except Err as e:
            answer = error_json(e)
        respond(response_out, json.dumps(answer).encode())
