"""One serving process: the route table, loaded components, the HTTP listener and the wasm threads.

The event loop parses HTTP and moves bytes. A guest that cannot wait on anything slow runs inline
on the loop; one whose waits can all suspend (wasi:keyvalue on NATS) runs on the loop too, suspended
while it waits (`instances.LoadedComponent.start`, runtime.suspension). A guest that may block in a
host call (outgoing HTTP, wasi:keyvalue on Redis or a disk, blobstore: any interface declared
`blocking`) runs on one of up to `RuntimeSettings.wasm_threads`
wasm threads, each call in its own instance (poolSize/maxConcurrency semantics are unchanged: an
instance serves one call at a time). Threads add no CPU under the GIL (more cores come from worker
processes, see `workers`), but wasm runs with the GIL released and a guest waiting on a round trip
to its backend holds none: with one thread, every request of the worker would queue behind that
wait. Threads are started on demand, so a worker serving only inline guests has one. Responses
travel back with `call_soon_threadsafe`, coalesced by `ThreadSink` so a small response costs one
wake-up of the loop.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import wasmtime

from wasmfleet.bus import http_routing
from wasmfleet.host.plugin_api import store_state
from wasmfleet.host.plugins.messaging_config import Subscriptions
from wasmfleet.host.runtime import http1, instances, messaging_dispatch, owned_loading, plugin_registry
from wasmfleet.host.runtime.errors import GuestTrap, RuntimeUnavailable
from wasmfleet.host.runtime.specs import ComponentSpec, RuntimeSettings
from wasmfleet.host.wasi import http, io

log = logging.getLogger(__name__)

FLUSH_BYTES = 64 * 1024
FLUSH_AFTER_S = 0.02
"""A guest that flushes after running this long is streaming: its flushes pass its bytes on, at
most once per FLUSH_AFTER_S (a guest copying a body flushes every 4 KB: one socket write each
would cost more than the copy), and whatever is pending goes out before the guest waits."""

QUEUED_HIGH = 4 << 20
"""Response bytes a guest on the wasm thread may hand to the loop ahead of the connection."""
SWITCH_INTERVAL_S = 0.0005
"""The process's GIL switch interval while it serves (Python's default: 5 ms). A thread woken from
a wait (a wasm thread whose keyvalue reply came, the loop after a socket read) needs the GIL back,
and another thread holding it gives it up only after this interval: with the default, every NATS
round trip of a guest may wait up to 5 ms for it. Measured on the 2-core CI machine without HTTP
(5 threads doing set+get through the keyvalue NATS backend): 0.8-1.7k pairs/s at 5 ms, 2.3-2.9k at
0.5 ms. CPU-bound threads lose little to the extra switches."""
IDLE_TIMEOUT_S = 75.0
"""Keep-alive connections idle this long are closed (longer than typical client/proxy pools' 60 s)."""


class ThreadSink:
    """`ResponseSink` for one request: batches the guest's response for the connection.

    Intermediate batches (large bodies, streaming guests) are delivered as they fill up, through
    `call_soon_threadsafe` when the guest runs on the wasm thread or directly when it runs inline
    on the loop; the last batch goes with the end-of-call callback, so a small response costs one
    hand-over.
    """

    __slots__ = ("conn", "delivered", "finished", "head", "head_pushed", "inline", "last_push", "lock", "loop",
                 "parts", "queued", "size", "started_at")

    def __init__(self, loop: asyncio.AbstractEventLoop, conn: http1.Connection, inline: bool = False) -> None:
        self.loop = loop
        self.inline = inline
        self.conn = conn
        self.parts: list[bytes] = []
        self.size = 0
        self.queued = 0
        """Bytes handed to the loop (wasm thread) and not yet given to the connection."""
        # Made on the first intermediate batch: most responses go in one hand-over and never need them.
        self.lock: threading.Lock | None = None
        self.delivered: threading.Event | None = None
        self.head: tuple[int, list[tuple[str, bytes]]] | None = None
        self.head_pushed = False
        self.finished = False
        self.started_at = self.last_push = time.monotonic()

    def start(self, status: int, headers: list[tuple[str, bytes]]) -> None:
        self.head = (status, headers)

    def write(self, data: bytes) -> None:
        if self.finished:
            return
        self.parts.append(data)
        self.size += len(data)
        if self.size >= FLUSH_BYTES:
            self._push(False)

    def flush(self) -> None:
        now = time.monotonic()
        if not self.finished and now - self.started_at > FLUSH_AFTER_S and now - self.last_push > FLUSH_AFTER_S:
            self._push(False)

    def before_wait(self) -> None:
        """The guest is about to block: send what it has written (a streaming guest's last event
        must not wait for its next one)."""
        if not self.finished and (self.parts or (self.head is not None and not self.head_pushed)):
            self._push(False)

    def finish(self) -> None:
        # Delivered with the end-of-call callback (see ServingCore._done).
        self.finished = True

    def _push(self, finished: bool) -> None:
        head = None if self.head_pushed else self.head
        self.head_pushed = True
        parts, self.parts, self.size = self.parts, [], 0
        self.last_push = time.monotonic()
        if self.inline:
            self.conn.send(head, parts, finished)
        else:
            size = sum(len(p) for p in parts)
            if self.lock is None:
                self.lock, self.delivered = threading.Lock(), threading.Event()
            with self.lock:
                self.queued += size
            self.loop.call_soon_threadsafe(self._deliver, head, parts, finished, size)
            if not finished and (self.queued > QUEUED_HIGH or not self.conn.drained.is_set()):
                self._hold_back()

    def _deliver(self, head: tuple[int, list[tuple[str, bytes]]] | None, parts: list[bytes], finished: bool,
                 size: int) -> None:
        """On the loop: one batch to the connection; wakes a guest held back by `_hold_back`."""
        self.conn.send(head, parts, finished)
        assert self.lock is not None and self.delivered is not None
        with self.lock:
            self.queued -= size
        self.delivered.set()

    def _hold_back(self) -> None:
        """The client reads slower than the guest writes: wait (on the wasm thread, at most until
        the request's deadline) until the loop has handed most batches to the connection and the
        connection has sent most of what it holds, so a streamed response never piles up in the
        host whole."""
        try:
            state = store_state.state()
        except wasmtime.WasmtimeError:
            return  # not inside a guest call: nothing to hold back
        assert self.delivered is not None
        while True:
            waiting_on: threading.Event
            if self.queued > QUEUED_HIGH:
                waiting_on = self.delivered
                self.delivered.clear()
                if self.queued <= QUEUED_HIGH:
                    continue
            elif not self.conn.drained.is_set():
                waiting_on = self.conn.drained
            else:
                return
            remaining = state.deadline - time.monotonic()
            if remaining <= 0:
                raise store_state.DeadlineExceeded("request deadline exceeded while the client was reading")
            waiting_on.wait(min(remaining, 1.0))


@dataclass
class Route:
    hostnames: tuple[str, ...]
    component: instances.LoadedComponent


@dataclass
class RouteTable:
    by_workload: dict[str, Route] = field(default_factory=dict)
    by_host: dict[str, list[str]] = field(default_factory=dict)
    turn: int = 0

    def set(self, workload_id: str, route: Route) -> instances.LoadedComponent | None:
        old = self.remove(workload_id)
        self.by_workload[workload_id] = route
        for h in route.hostnames:
            self.by_host.setdefault(h, []).append(workload_id)
        return old

    def remove(self, workload_id: str) -> instances.LoadedComponent | None:
        route = self.by_workload.pop(workload_id, None)
        if route is None:
            return None
        for h in route.hostnames:
            ids = self.by_host.get(h, [])
            if workload_id in ids:
                ids.remove(workload_id)
            if not ids:
                self.by_host.pop(h, None)
        return route.component

    def pick(self, host: str) -> instances.LoadedComponent | None:
        ids = self.by_host.get(host) or self.by_host.get("*")
        if not ids:
            return None
        self.turn += 1
        return self.by_workload[ids[self.turn % len(ids)]].component


class ServingCore:
    """Everything one process needs to serve HTTP for its routed workloads."""

    def __init__(self, settings: RuntimeSettings) -> None:
        self.settings = settings
        self.routes = RouteTable()
        self.connections: set[http1.Connection] = set()
        self.inflight = 0
        self.stopping = False
        self.server: asyncio.base_events.Server | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self.threads: list[threading.Thread] = []
        self._threads_lock = threading.Lock()
        self._idle_threads = 0
        self._queued = 0
        """Wasm threads waiting for a job, and jobs not yet taken (both under _threads_lock): more
        jobs than idle threads -> start another thread."""
        self.idle_event: asyncio.Event | None = None
        self.counters = {"requests": 0, "responses_5xx": 0, "rejected": 0}
        self.messaging: messaging_dispatch.MessagingDispatcher | None = None
        """Message handlers of this process (created by the first subscribe)."""

    # --- lifecycle --------------------------------------------------------------------------

    async def start(self, sock: socket.socket) -> None:
        self.loop = asyncio.get_running_loop()
        sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL_S))
        self.idle_event = asyncio.Event()
        self.idle_event.set()
        self._add_thread()
        self.server = await self.loop.create_server(self._new_connection, sock=sock, backlog=1024)
        self.loop.call_later(IDLE_TIMEOUT_S / 3, self._reap_idle)

    def _reap_idle(self) -> None:
        if self.stopping or self.loop is None:
            return
        cutoff = time.monotonic() - IDLE_TIMEOUT_S
        for conn in list(self.connections):
            if conn.idle() and conn.last_active < cutoff and conn.transport is not None:
                conn.transport.close()
        self.loop.call_later(IDLE_TIMEOUT_S / 3, self._reap_idle)

    def _new_connection(self) -> http1.Connection:
        conn = http1.Connection(self, self.settings.max_request_body_mb << 20, self.connections.discard)
        self.connections.add(conn)
        return conn

    async def stop(self, grace_s: float) -> None:
        """Stops accepting, lets in-flight requests finish (at most grace_s), then closes."""
        self.stopping = True
        if self.server is not None:
            self.server.close()
        deadline = time.monotonic() + grace_s
        assert self.idle_event is not None
        while self.inflight and time.monotonic() < deadline:
            self.idle_event.clear()
            try:
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation.
                async with asyncio.timeout(max(0.01, deadline - time.monotonic())):
                    await self.idle_event.wait()
            except TimeoutError:
                break
        for conn in list(self.connections):
            if conn.transport is not None:
                conn.transport.close()
        for _ in self.threads:
            self.jobs.put(None)
        if self.messaging is not None:
            await self.messaging.close(max(0.1, deadline - time.monotonic()))
        for route in list(self.routes.by_workload.values()):
            route.component.close()
        self.routes = RouteTable()
        plugin_registry.stop_process_lifecycle()

    # --- routes -----------------------------------------------------------------------------

    async def route(self, workload_id: str, hostnames: list[str], spec: ComponentSpec, artefact: str) -> None:
        from pathlib import Path

        def load() -> instances.LoadedComponent:
            loaded = instances.LoadedComponent(spec, self.settings, Path(artefact))
            loaded.warm_up()
            return loaded

        component = await owned_loading.load_owned(load)
        if self.stopping:  # `stop` has closed the routes already; this one would never be
            component.close()
            raise RuntimeUnavailable("the wasm runtime is stopping")
        hosts = tuple(sorted({http_routing.normalize_hostname(h) for h in hostnames}))
        previous = self.routes.by_workload.get(workload_id)
        if previous is not None:
            component.count_on(previous.component)
        old = self.routes.set(workload_id, Route(hosts, component))
        if old is not None:
            old.close()

    def unroute(self, workload_id: str) -> None:
        old = self.routes.remove(workload_id)
        if old is not None:
            old.close()

    async def subscribe(self, workload_id: str, spec: ComponentSpec, artefact: str, plan: Subscriptions,
                        host_slots: int) -> None:
        """Delivers the messages of `plan` to `spec`'s wasmcloud:messaging handler (see messaging_dispatch)."""
        if self.messaging is None:
            self.messaging = messaging_dispatch.MessagingDispatcher(self.settings)
        await self.messaging.subscribe(workload_id, spec, artefact, plan, host_slots)

    async def unsubscribe(self, workload_id: str) -> None:
        if self.messaging is not None:
            await self.messaging.unsubscribe(workload_id, self.settings.drain_timeout_s)

    def stats(self) -> dict[str, Any]:
        per: dict[str, Any] = {}
        for wid, route in self.routes.by_workload.items():
            component = route.component
            s = component.stats
            runs = "suspended" if component.suspends else "thread" if component.may_block else "inline"
            per[wid] = {"hostnames": list(route.hostnames), "runs": runs, "requests": s.requests, "traps": s.traps,
                        "timeouts": s.timeouts, "instantiations": s.instantiations,
                        "warm": len(route.component.pool),
                        "throttled_seconds": round(route.component.throttling.seconds, 3)}
        out = {**self.counters, "inflight": self.inflight, "connections": len(self.connections), "workloads": per}
        if self.messaging is not None:
            out["messaging"] = self.messaging.stats()
        return out

    # --- requests ---------------------------------------------------------------------------

    def dispatch(self, conn: http1.Connection, request: http1.Request) -> None:
        self.counters["requests"] += 1
        if self.stopping:
            conn.simple(503, "server is stopping\n", close=True, refusal=True)
            return
        if not request.host:
            conn.simple(400, "missing Host header\n")
            return
        name = http_routing.normalize_hostname(request.host)
        component = self.routes.pick(name)
        if component is None:
            conn.simple(404, f"no workload serves host {name!r}\n", refusal=True)
            return
        self.inflight += 1
        loop = self.loop
        assert loop is not None
        if not component.may_block:
            # The guest cannot wait on anything slow (no outgoing HTTP), or is suspended when it
            # does (`instances.LoadedComponent.suspends`): once the whole request is here, run it
            # right on the loop, saving the thread hand-overs (two per request, and one per body
            # chunk). A body of bounded size is waited for first.
            run = self._run_suspended if component.suspends else self._run_inline
            if request.body.eof:
                run(loop, component, conn, request)
                return

            def body_arrived(complete: bool) -> None:
                if complete:
                    run(loop, component, conn, request)
                else:  # the client went away before sending its body: nothing to run
                    self._finished()

            if conn.wait_for_body(body_arrived):
                return

        def job() -> None:
            self._run(loop, component, conn, request)

        with self._threads_lock:
            self._queued += 1
            more = self._queued > self._idle_threads and len(self.threads) < self.settings.wasm_threads
        self.jobs.put(job)
        if more:
            self._add_thread()

    def _add_thread(self) -> None:
        with self._threads_lock:
            if len(self.threads) >= max(1, self.settings.wasm_threads):
                return
            self._idle_threads += 1  # counted from now: a burst of jobs starts one thread each
            thread = threading.Thread(target=self._wasm_thread, name=f"wasm-{len(self.threads)}", daemon=True)
            self.threads.append(thread)
        thread.start()

    def _wasm_thread(self) -> None:
        lock = self._threads_lock
        while True:
            job = self.jobs.get()
            with lock:
                self._idle_threads -= 1
                if job is not None:
                    self._queued -= 1
            if job is None:
                return
            try:
                job()
            except Exception:  # pragma: no cover - _run catches everything it expects
                log.exception("wasm job failed")
            with lock:
                self._idle_threads += 1

    def _run(self, loop: asyncio.AbstractEventLoop, component: instances.LoadedComponent,
             conn: http1.Connection, request: http1.Request, inline: bool = False) -> None:
        sink = ThreadSink(loop, conn, inline)
        wreq = http.IncomingRequest(request.method, request.target, request.authority, request.headers,
                                    io.ChannelInput(request.body))
        outparam: http.ResponseOutparam | None = None
        error: GuestTrap | None = None
        try:
            outparam = component.invoke(wreq, sink)
        except GuestTrap as exc:
            error = exc
        except Exception as exc:
            log.exception("host error while serving %s", component.spec.workload_id)
            error = GuestTrap(f"host error: {type(exc).__name__}: {exc}")
        if inline:
            self._done(conn, sink, outparam, error, component)
        else:
            loop.call_soon_threadsafe(self._done, conn, sink, outparam, error, component)

    def _run_inline(self, loop: asyncio.AbstractEventLoop, component: instances.LoadedComponent,
                    conn: http1.Connection, request: http1.Request) -> None:
        self._run(loop, component, conn, request, inline=True)

    def _run_suspended(self, loop: asyncio.AbstractEventLoop, component: instances.LoadedComponent,
                       conn: http1.Connection, request: http1.Request) -> None:
        sink = ThreadSink(loop, conn, inline=True)
        wreq = http.IncomingRequest(request.method, request.target, request.authority, request.headers,
                                    io.ChannelInput(request.body))

        def finish(outparam: http.ResponseOutparam | None, error: GuestTrap | None) -> None:
            self._done(conn, sink, outparam, error, component)

        try:
            component.start(wreq, sink, loop, finish)
        except Exception as exc:
            log.exception("host error while serving %s", component.spec.workload_id)
            finish(None, GuestTrap(f"host error: {type(exc).__name__}: {exc}"))

    def _finished(self) -> None:
        self.inflight -= 1
        if self.inflight == 0 and self.idle_event is not None:
            self.idle_event.set()

    def _done(self, conn: http1.Connection, sink: ThreadSink, outparam: http.ResponseOutparam | None,
              error: GuestTrap | None, component: instances.LoadedComponent) -> None:
        self._finished()
        name = component.spec.name or component.spec.workload_id
        if error is not None:
            self.counters["responses_5xx"] += 1
            log.warning("%s: %s", name, error)
            if conn.head_sent:
                conn.abort()
            elif error.deadline:
                conn.simple(504, f"{name}: {error}\n")
            else:
                conn.simple(500, f"{name}: guest failed: {error}\n")
            return
        if sink.head is None:
            self.counters["responses_5xx"] += 1
            if outparam is not None and outparam.error is not None:
                conn.simple(500, f"{name}: guest answered with an error: {outparam.error}\n")
            else:
                conn.simple(500, f"{name}: guest returned without setting a response\n")
            return
        # The handler returned: deliver what is left and end the response (an unfinished body is
        # ended too: the guest cannot write any more).
        sink.finished = True
        conn.send(None if sink.head_pushed else sink.head, sink.parts, True)
