"""wasi:http (types, outgoing-handler): requests, responses, fields and bodies.

The incoming side is fed by the runtime's HTTP front end: an `IncomingRequest` whose body is an
`io.Channel`, and a `ResponseSink` that receives the status, headers and body chunks. The outgoing
side performs real HTTP/1.1 requests with http.client on a helper thread, only to hosts matching
the workload's allowedHosts (empty = no egress, "*" = any).
"""

from __future__ import annotations

import fnmatch
import http.client
import socket
import threading
from typing import Any, Protocol

from wasmfleet.host.plugin_api import store_state
from wasmfleet.host.plugin_api.interfaces import OK, Interface, err, ok
from wasmfleet.host.wasi.io import (
    BytesInput,
    CallbackPollable,
    ChannelInput,
    InputStream,
    OutputStream,
    Pollable,
)

FORBIDDEN = frozenset(
    {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "http2-settings"}
)
METHODS = ("get", "head", "post", "put", "delete", "connect", "options", "trace", "patch")
_TOKEN_BYTES = b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
"""Header-name characters (RFC 9110 tchar): deleting them from a valid name leaves nothing."""


def method_to_wit(method: str) -> tuple[str, str | None]:
    low = method.lower()
    return (low, None) if low in METHODS else ("other", method)


def method_from_wit(m: tuple[str, str | None]) -> str:
    return m[1] if m[0] == "other" and m[1] else m[0].upper()


def scheme_from_wit(s: tuple[str, str | None] | None) -> str:
    if s is None:
        return "http"
    return (s[1] or "http") if s[0] == "other" else s[0].lower()


class ResponseSink(Protocol):
    """Where a guest's response goes (implemented by the runtime's HTTP front end)."""

    def start(self, status: int, headers: list[tuple[str, bytes]]) -> None: ...
    def write(self, data: bytes) -> None: ...
    def flush(self) -> None: ...
    def finish(self) -> None: ...


def _valid_name(name: str) -> bool:
    return bool(name) and not name.encode().translate(None, _TOKEN_BYTES)


class Fields:
    def __init__(self, entries: list[tuple[str, bytes]] | None = None, immutable: bool = False) -> None:
        self.entries: list[tuple[str, bytes]] = entries if entries is not None else []
        self.immutable = immutable

    def _check(self, name: str, values: list[bytes]) -> tuple[str, Any] | None:
        if self.immutable:
            return err(("immutable", None))
        if not _valid_name(name) or any(
            b"\r" in v or b"\n" in v for v in values
        ):
            return err(("invalid-syntax", None))
        if name.lower() in FORBIDDEN:
            return err(("forbidden", None))
        return None

    def get(self, name: str) -> list[bytes]:
        low = name.lower()
        return [v for k, v in self.entries if k.lower() == low]

    def set(self, name: str, values: list[bytes]) -> tuple[str, Any]:
        bad = self._check(name, values)
        if bad:
            return bad
        low = name.lower()
        self.entries = [(k, v) for k, v in self.entries if k.lower() != low]
        self.entries.extend((name, v) for v in values)
        return OK

    def delete(self, name: str) -> tuple[str, Any]:
        if self.immutable:
            return err(("immutable", None))
        low = name.lower()
        self.entries = [(k, v) for k, v in self.entries if k.lower() != low]
        return OK

    def append(self, name: str, value: bytes) -> tuple[str, Any]:
        if self.immutable or not _valid_name(name) or b"\r" in value or b"\n" in value:
            bad = self._check(name, [value])  # says which error
            if bad:
                return bad
        elif name.lower() in FORBIDDEN:
            return err(("forbidden", None))
        self.entries.append((name, value))
        return OK


def _from_list(entries: list[tuple[str, bytes]]) -> tuple[str, Any]:
    f = Fields()
    for name, value in entries:
        bad = f.append(name, value)
        if bad != OK:
            return bad
    return ok(f)


def _get_and_delete(f: Fields, name: str) -> tuple[str, Any]:
    values = f.get(name)
    r = f.delete(name)
    return ok(values) if r == OK else r


class IncomingBody:
    def __init__(self, stream: InputStream) -> None:
        self.stream: InputStream | None = stream


def _incoming_body_stream(b: IncomingBody) -> tuple[str, Any]:
    if b.stream is None:
        return err(None)
    s, b.stream = b.stream, None
    return ok(s)


class FutureTrailers:
    def __init__(self) -> None:
        self.taken = False


def _future_trailers_get(f: FutureTrailers) -> Any:
    if f.taken:
        return err(None)
    f.taken = True
    return ok(ok(None))


class IncomingRequest:
    def __init__(
        self,
        method: str,
        path_with_query: str,
        authority: str | None,
        headers: list[tuple[str, bytes]],
        body: ChannelInput | BytesInput,
        scheme: str = "http",
    ) -> None:
        self.method = method
        self.path_with_query = path_with_query
        self.authority = authority
        self.headers = Fields(headers, immutable=True)
        self.scheme = scheme
        self.body: InputStream | None = body

    def consume(self) -> tuple[str, Any]:
        if self.body is None:
            return err(None)
        body, self.body = self.body, None
        return ok(IncomingBody(body))


def _scheme_to_wit(scheme: str) -> tuple[str, str | None]:
    return ("HTTP", None) if scheme == "http" else ("HTTPS", None) if scheme == "https" else ("other", scheme)


class _BodyOutput(OutputStream):
    def __init__(self, body: OutgoingBody) -> None:
        self.body = body

    def write(self, data: bytes) -> None:
        self.body.write(data)

    def flush(self) -> None:
        self.body.flush()


class OutgoingBody:
    """The body of a guest's response (to a ResponseSink) or of its outgoing request (buffered)."""

    def __init__(self, sink: ResponseSink | None = None, waitable: bool = False) -> None:
        self.sink = sink
        self.buffer: list[bytes] = []
        self.stream_taken = False
        self.done = False
        # Only an outgoing request's body is waited on (by the thread sending it); a response
        # body, made on every request, skips the cost of an Event.
        self.finished = threading.Event() if waitable else None

    def write(self, data: bytes) -> None:
        if self.sink is not None:
            self.sink.write(data)
        else:
            self.buffer.append(data)

    def flush(self) -> None:
        if self.sink is not None:
            self.sink.flush()

    def finish(self) -> None:
        if not self.done:
            self.done = True
            if self.finished is not None:
                self.finished.set()
            if self.sink is not None:
                self.sink.finish()

    def close(self) -> None:
        # Dropped without finish(): still end the message so the client is not left hanging.
        self.finish()


def _body_write(b: OutgoingBody) -> tuple[str, Any]:
    if b.stream_taken:
        return err(None)
    b.stream_taken = True
    return ok(_BodyOutput(b))


def _body_finish(b: OutgoingBody, trailers: Fields | None) -> tuple[str, Any]:
    b.finish()
    return OK


class OutgoingResponse:
    def __init__(self, headers: Fields) -> None:
        self.status = 200
        self.headers = headers
        self.body: OutgoingBody | None = None
        self.body_taken = False


def _set_status(r: OutgoingResponse, status: int) -> tuple[str, Any]:
    if not 100 <= status <= 999:
        return err(None)
    r.status = status
    return OK


def _response_body(r: OutgoingResponse) -> tuple[str, Any]:
    if r.body_taken:
        return err(None)
    r.body_taken = True
    r.body = OutgoingBody()
    return ok(r.body)


class ResponseOutparam:
    def __init__(self, sink: ResponseSink) -> None:
        self.sink = sink
        self.error: Any = None
        self.set_called = False


def _outparam_set(out: ResponseOutparam, response: tuple[str, Any]) -> None:
    out.set_called = True
    tag, value = response
    if tag == "err":
        out.error = value
        return
    resp: OutgoingResponse = value
    out.sink.start(resp.status, list(resp.headers.entries))
    body = resp.body
    if body is None:
        # The guest may ask for the body later; connect it to the sink now.
        body = resp.body = OutgoingBody()
    body.sink = out.sink
    for chunk in body.buffer:
        out.sink.write(chunk)
    body.buffer.clear()
    if body.done:
        out.sink.finish()


# --- outgoing requests -----------------------------------------------------------------------

class OutgoingRequest:
    def __init__(self, headers: Fields) -> None:
        self.headers = headers
        self.method: tuple[str, str | None] = ("get", None)
        self.path_with_query: str | None = None
        self.scheme: tuple[str, str | None] | None = None
        self.authority: str | None = None
        self.body: OutgoingBody | None = None


def _req_body(r: OutgoingRequest) -> tuple[str, Any]:
    if r.body is not None:
        return err(None)
    r.body = OutgoingBody(waitable=True)
    return ok(r.body)


def _setter(attr: str) -> Any:
    def set_(r: Any, value: Any) -> tuple[str, Any]:
        setattr(r, attr, value)
        return OK

    return set_


class RequestOptions:
    def __init__(self) -> None:
        self.connect_timeout: int | None = None
        self.first_byte_timeout: int | None = None
        self.between_bytes_timeout: int | None = None


class ResponseInput(InputStream):
    def __init__(self, resp: http.client.HTTPResponse, conn: http.client.HTTPConnection) -> None:
        self.resp = resp
        self.conn = conn

    def read(self, n: int) -> bytes | None:
        data = self.resp.read1(n) if n else b""
        if not data and n:
            self.close()
            return None
        return data

    def blocking_read(self, n: int) -> bytes | None:
        return self.read(n)

    def close(self) -> None:
        self.conn.close()


class IncomingResponse:
    def __init__(self, status: int, headers: list[tuple[str, bytes]], body: ResponseInput) -> None:
        self.status = status
        self.headers = Fields(headers, immutable=True)
        self.body: InputStream | None = body

    def consume(self) -> tuple[str, Any]:
        if self.body is None:
            return err(None)
        body, self.body = self.body, None
        return ok(IncomingBody(body))


def host_allowed(authority: str, allowed: tuple[str, ...]) -> bool:
    host = authority.rsplit("@", 1)[-1]
    if host.startswith("["):
        host = host[1 : host.find("]")]
    elif ":" in host:
        host = host.rsplit(":", 1)[0]
    return any(p == "*" or fnmatch.fnmatch(host.lower(), p.lower()) or p == authority for p in allowed)


class FutureIncomingResponse:
    def __init__(self, result: Any = None) -> None:
        self.result: Any = result
        self.done = threading.Event()
        self.taken = False
        if result is not None:
            self.done.set()

    def start(self, req: OutgoingRequest, options: RequestOptions | None) -> None:
        self.cond = store_state.state().cond
        threading.Thread(target=self._run, args=(req, options), daemon=True).start()

    def _run(self, req: OutgoingRequest, options: RequestOptions | None) -> None:
        try:
            self.result = ok(self._perform(req, options))
        except (ConnectionRefusedError, ConnectionResetError):
            self.result = err(("connection-refused", None))
        except socket.gaierror:
            self.result = err(("DNS-error", (None, None)))
        except TimeoutError:
            self.result = err(("connection-timeout", None))
        except Exception as exc:
            self.result = err(("internal-error", f"{type(exc).__name__}: {exc}"))
        self.done.set()
        with self.cond:
            self.cond.notify_all()

    def _perform(self, req: OutgoingRequest, options: RequestOptions | None) -> IncomingResponse:
        if req.body is not None and req.body.finished is not None:
            req.body.finished.wait(60)
        timeout = 30.0
        if options is not None and options.connect_timeout:
            timeout = options.connect_timeout / 1e9
        scheme = scheme_from_wit(req.scheme)
        assert req.authority is not None
        conn: http.client.HTTPConnection
        if scheme == "https":
            conn = http.client.HTTPSConnection(req.authority, timeout=timeout)
        else:
            conn = http.client.HTTPConnection(req.authority, timeout=timeout)
        body = b"".join(req.body.buffer) if req.body is not None else None
        conn.putrequest(method_from_wit(req.method), req.path_with_query or "/", skip_accept_encoding=True)
        for name, value in req.headers.entries:
            conn.putheader(name, value)
        if body:
            conn.putheader("content-length", str(len(body)))
        conn.endheaders(body or None)
        resp = conn.getresponse()
        headers = [(k.lower(), v.encode("latin-1")) for k, v in resp.getheaders()]
        return IncomingResponse(resp.status, headers, ResponseInput(resp, conn))


def _future_get(f: FutureIncomingResponse) -> Any:
    if not f.done.is_set():
        return None
    if f.taken:
        return err(None)
    f.taken = True
    return ok(f.result)


def _handle(req: OutgoingRequest, options: RequestOptions | None) -> tuple[str, Any]:
    ctx = store_state.state()
    if not req.authority:
        return err(("HTTP-request-URI-invalid", None))
    if not host_allowed(req.authority, ctx.allowed_hosts):
        return err(("HTTP-request-denied", None))
    fut = FutureIncomingResponse()
    fut.start(req, options)
    return ok(fut)


def _always(value: Any) -> Any:
    return lambda *_: value


TYPES = {
    "http-error-code": _always(None),
    "[constructor]fields": lambda: Fields(),
    "[static]fields.from-list": _from_list,
    "[method]fields.get": Fields.get,
    "[method]fields.has": lambda f, n: bool(f.get(n)),
    "[method]fields.set": Fields.set,
    "[method]fields.delete": Fields.delete,
    "[method]fields.get-and-delete": _get_and_delete,
    "[method]fields.append": Fields.append,
    "[method]fields.entries": lambda f: list(f.entries),
    "[method]fields.clone": lambda f: Fields(list(f.entries)),
    "[method]incoming-request.method": lambda r: method_to_wit(r.method),
    "[method]incoming-request.path-with-query": lambda r: r.path_with_query,
    "[method]incoming-request.scheme": lambda r: _scheme_to_wit(r.scheme),
    "[method]incoming-request.authority": lambda r: r.authority,
    "[method]incoming-request.headers": lambda r: r.headers,
    "[method]incoming-request.consume": IncomingRequest.consume,
    "[constructor]outgoing-request": OutgoingRequest,
    "[method]outgoing-request.body": _req_body,
    "[method]outgoing-request.method": lambda r: r.method,
    "[method]outgoing-request.set-method": _setter("method"),
    "[method]outgoing-request.path-with-query": lambda r: r.path_with_query,
    "[method]outgoing-request.set-path-with-query": _setter("path_with_query"),
    "[method]outgoing-request.scheme": lambda r: r.scheme,
    "[method]outgoing-request.set-scheme": _setter("scheme"),
    "[method]outgoing-request.authority": lambda r: r.authority,
    "[method]outgoing-request.set-authority": _setter("authority"),
    "[method]outgoing-request.headers": lambda r: r.headers,
    "[constructor]request-options": RequestOptions,
    "[method]request-options.connect-timeout": lambda o: o.connect_timeout,
    "[method]request-options.set-connect-timeout": _setter("connect_timeout"),
    "[method]request-options.first-byte-timeout": lambda o: o.first_byte_timeout,
    "[method]request-options.set-first-byte-timeout": _setter("first_byte_timeout"),
    "[method]request-options.between-bytes-timeout": lambda o: o.between_bytes_timeout,
    "[method]request-options.set-between-bytes-timeout": _setter("between_bytes_timeout"),
    "[static]response-outparam.set": _outparam_set,
    "[method]incoming-response.status": lambda r: r.status,
    "[method]incoming-response.headers": lambda r: r.headers,
    "[method]incoming-response.consume": IncomingResponse.consume,
    "[method]incoming-body.stream": _incoming_body_stream,
    "[static]incoming-body.finish": lambda b: FutureTrailers(),
    "[method]future-trailers.subscribe": lambda f: Pollable(),
    "[method]future-trailers.get": _future_trailers_get,
    "[constructor]outgoing-response": OutgoingResponse,
    "[method]outgoing-response.status-code": lambda r: r.status,
    "[method]outgoing-response.set-status-code": _set_status,
    "[method]outgoing-response.headers": lambda r: r.headers,
    "[method]outgoing-response.body": _response_body,
    "[method]outgoing-body.write": _body_write,
    "[static]outgoing-body.finish": _body_finish,
    "[method]future-incoming-response.subscribe": lambda f: CallbackPollable(f.done.is_set),
    "[method]future-incoming-response.get": _future_get,
}

INTERFACES = {
    "wasi:http/types": Interface("wasi:http/types", TYPES),
    "wasi:http/outgoing-handler": Interface("wasi:http/outgoing-handler", {"handle": _handle}, blocking=True),
}
