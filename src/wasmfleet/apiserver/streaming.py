"""Serving one watch request: initial state or replay, then live events, bookmarks, timeout."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any, cast

from aiohttp import web

from wasmfleet.apiserver import errors, selectors, tables
from wasmfleet.apiserver.engine import Engine
from wasmfleet.apiserver.resource_types import ResourceType
from wasmfleet.apiserver.store import dumps
from wasmfleet.apiserver.watching import WatchEvent

DEFAULT_TIMEOUT_S = 1800.0
PRE_TIMEOUT_BOOKMARK_S = 2.0


class WatchRequest:
    def __init__(self, engine: Engine, rt: ResourceType, namespace: str | None, query: Any, as_table: str | None,
                 bookmark_interval_s: float) -> None:
        self.engine = engine
        self.rt = rt
        self.namespace = namespace
        self.match = selectors.matcher(query.get("labelSelector"), query.get("fieldSelector"))
        self.as_table = as_table  # None, or the includeObject policy
        self.rv_param = query.get("resourceVersion", "")
        self.bookmarks = errors.query_bool(query.get("allowWatchBookmarks"), "allowWatchBookmarks")
        self.initial_events = errors.query_bool(query.get("sendInitialEvents"), "sendInitialEvents")
        timeout = query.get("timeoutSeconds")
        try:
            self.timeout_s = float(timeout) if timeout else DEFAULT_TIMEOUT_S
        except ValueError as exc:
            raise errors.bad_request(f"invalid timeoutSeconds: {timeout!r}") from exc
        self.bookmark_interval_s = bookmark_interval_s
        self.first_table = True
        # Stored objects already have the shape this client reads (no conversion): frames are shared.
        self.same_shape = rt.shared_storage is None and (rt.builtin or rt.version == rt.storage_version)

    def _frame(self, type_: str, obj: dict[str, Any], text: str | None = None) -> str:
        if self.as_table is not None:
            body = tables.table(self.rt, [obj], self.as_table, {"resourceVersion": obj["metadata"].get(
                "resourceVersion", "")}, with_columns=self.first_table)
            self.first_table = False
            return dumps({"type": type_, "object": body}) + "\n"
        if obj.get("apiVersion") != self.rt.api_version:
            obj = self.engine.present(self.rt, obj)
            text = None
        return '{"type":"' + type_ + '","object":' + (text if text is not None else dumps(obj)) + "}\n"

    def _translate(self, ev: WatchEvent, line: str | None = None) -> str | None:
        """The frame this watcher gets for `ev` (selectors turn MODIFIED into ADDED/DELETED), or None."""
        if self.match is None:
            if self.as_table is None and self.same_shape:
                return line if line is not None else ev.line()
            return self._frame(ev.type, ev.obj, ev.text)
        obj: dict[str, Any] = ev.obj
        text: str | None = ev.text
        old = ev.old
        if obj.get("apiVersion") != self.rt.api_version:  # selectors apply to the shape this client sees
            obj, text = self.engine.present(self.rt, obj), None
            old = self.engine.present(self.rt, old) if old is not None else None
        now_in = self.match(obj)
        if ev.type == "DELETED":
            return self._frame("DELETED", obj, text) if now_in else None
        was_in = old is not None and self.match(old)
        if now_in:
            return self._frame("MODIFIED" if was_in else "ADDED", obj, text)
        if was_in:
            return self._frame("DELETED", obj, text)
        return None

    def _bookmark(self, rv: int, initial_end: bool = False) -> str:
        meta: dict[str, Any] = {"resourceVersion": str(rv)}
        if initial_end:
            meta["annotations"] = {"k8s.io/initial-events-end": "true"}
        return dumps({"type": "BOOKMARK", "object": {"kind": self.rt.kind, "apiVersion": self.rt.api_version,
                                                      "metadata": meta}}) + "\n"

    async def _error_event(self, request: web.Request, exc: errors.ApiError) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        await resp.prepare(request)
        await resp.write((dumps({"type": "ERROR", "object": exc.status()}) + "\n").encode())
        await resp.write_eof()
        return resp

    async def serve(self, request: web.Request) -> web.StreamResponse:
        hub = self.engine.hub
        store = self.engine.store
        initial: list[str] = []
        floor = 0  # events at or below this are already reflected in the initial state
        if self.rv_param in ("", "0") or self.initial_events:
            floor = store.rv
            for (_, st) in sorted(store.items(self.rt.store_key, self.namespace), key=lambda kv: kv[0]):
                shown = self.engine.present(self.rt, st.obj)
                if self.match is None or self.match(shown):
                    initial.append(self._frame("ADDED", shown, st.text if shown is st.obj else None))
            replay, sub = hub.subscribe(self.rt.store_key, self.namespace, None)
        else:
            try:
                since = int(self.rv_param)
            except ValueError as exc:
                raise errors.bad_request(f"invalid resourceVersion: {self.rv_param!r}") from exc
            try:
                replay, sub = hub.subscribe(self.rt.store_key, self.namespace, since)
            except errors.ApiError as exc:
                # As kube-apiserver's watch cache does: 200, then one ERROR event carrying the 410 Status.
                return await self._error_event(request, exc)
        last_rv = floor
        resp = web.StreamResponse(headers={"Content-Type": "application/json" if self.as_table is None else
                                           "application/json;as=Table;v=v1;g=meta.k8s.io"})
        resp.enable_chunked_encoding()
        try:
            await resp.prepare(request)
            chunk = "".join(initial)
            if self.initial_events and self.bookmarks:
                chunk += self._bookmark(floor, initial_end=True)
            for old in replay:
                line = self._translate(old)
                if line:
                    chunk += line
                last_rv = max(last_rv, old.rv)
            if chunk:
                await resp.write(chunk.encode())
            sub.last_rv = last_rv
            if self.match is None and self.as_table is None and self.same_shape and request.transport is not None:
                sub.sink = _chunk_sink(request.transport)
            started = time.monotonic()
            deadline = started + self.timeout_s
            # As kube-apiserver's watch cache: a bookmark every interval and one 2 s before the deadline
            # (none when that moment has already passed, e.g. timeoutSeconds=1), so a client that resumes
            # after the timeout starts from a recent resourceVersion.
            pre_timeout: float | None = deadline - PRE_TIMEOUT_BOOKMARK_S
            if pre_timeout is not None and pre_timeout <= started:
                pre_timeout = None
            last_sent = started
            while True:
                now = time.monotonic()
                remaining = deadline - now
                if remaining <= 0:
                    break
                due = last_sent + self.bookmark_interval_s
                if pre_timeout is not None:
                    due = min(due, pre_timeout)
                wait = min(remaining, max(due - now, 0.0)) if self.bookmarks else remaining
                try:
                    item: tuple[WatchEvent, str] | None = await asyncio.wait_for(sub.queue.get(), timeout=wait)
                except TimeoutError:
                    if self.bookmarks and time.monotonic() >= due - 0.01:
                        await resp.write(self._bookmark(max(last_rv, sub.last_rv, floor)).encode())
                        last_sent = time.monotonic()
                        if pre_timeout is not None and last_sent >= pre_timeout - 0.01:
                            pre_timeout = None
                    continue
                if item is None:
                    break
                out: list[str] = []
                batch: list[tuple[WatchEvent, str] | None] = [item]
                while not sub.queue.empty() and len(batch) < 512:
                    batch.append(sub.queue.get_nowait())
                stop = False
                for entry in batch:
                    if entry is None:
                        stop = True
                        break
                    ev, shared_line = entry
                    if ev.rv <= floor:
                        continue
                    last_rv = ev.rv
                    line = self._translate(ev, shared_line)
                    if line:
                        out.append(line)
                sub.last_rv = max(sub.last_rv, last_rv)
                if out:
                    await resp.write("".join(out).encode())
                    last_sent = time.monotonic()
                if stop:
                    break
        except (ConnectionResetError, asyncio.CancelledError):
            raise
        finally:
            sub.sink = None
            hub.unsubscribe(sub)
        with contextlib.suppress(ConnectionResetError):
            await resp.write_eof()
        return resp


_SINK_BUFFER_LIMIT = 1 << 20


def _chunk_sink(transport: asyncio.BaseTransport) -> Callable[[bytes], bool]:
    """Write one HTTP/1.1 chunk directly to a watch connection, synchronously.

    The response is a prepared StreamResponse (aiohttp sends its headers at prepare) with chunked encoding,
    and its handler is parked on the queue, so nothing else writes to
    the transport meanwhile; frames reach the socket in publish order. A connection whose buffer is
    backed up (slow reader) falls back to the queue, which applies aiohttp's flow control.
    """
    # Duck-typed, not isinstance(asyncio.WriteTransport): uvloop's transports have the methods but do not
    # derive from asyncio's classes.
    out = cast(asyncio.WriteTransport, transport)

    def sink(data: bytes) -> bool:
        if out.is_closing() or out.get_write_buffer_size() > _SINK_BUFFER_LIMIT:
            return False
        out.write(b"%x\r\n%b\r\n" % (len(data), data))
        return True

    return sink
