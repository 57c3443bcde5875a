"""The NATS JetStream KV backend of wasi:keyvalue: a bucket is the JetStream KV bucket of that name.

nats-py is asyncio and host functions are not: one event-loop thread per host process owns the
connections (one per NATS URL, shared by every workload) and host functions wait for their
operation there, at most until the request's deadline. nats-py's exceptions are mapped here, at
this one boundary, to `KeyValueFailure` (error::other with the cause, error::no-such-store).

Fast lane: get, set, delete and exists go out from the calling thread on its own blocking
connection (plugins.nats_blocking), with no hand-off at all; the rest (list-keys, increment,
batches, bucket lookup) and logins the lane cannot do (a creds file) take the event loop. The lane
keeps the failover rules below: every one of its operations is idempotent, so it tries again
within the deadline whatever the failure, except a server's refusal (-ERR: a permissions
violation is error::access-denied).

Hand-off: a host function puts its operation on a queue and blocks on a plain lock that the loop
releases when the operation ends; the loop is woken (a write to its self-pipe) only when the queue
was empty, so concurrent guests share wake-ups (several wasm threads per worker, see
runtime.serving). asyncio's run_coroutine_threadsafe costs a wake-up per call and a Condition per
future, which showed up as a large part of a request's time (bench/keyvalue_bench.py).

Suspended guests: a guest that runs on a serving event loop (`store_state.WasiContext.loop`, see
runtime.suspension) gets a `NatsConnections` of that loop, and each operation is a coroutine
there (`NatsBucket` returns it; the plugin answers the guest with a `Later`): no thread and no
hand-off. Its get, set, delete and exists take that loop's lane (plugins.nats_loop_lane: many
requests in flight on one connection), with the same retry rules as the blocking lane; the rest
take nats-py on the loop, and so does a WebSocket URL or a creds-file login.

Failover: operations that are idempotent (get, exists, list-keys, set and delete by key, their
batch forms) are retried within the request's deadline when the attempt's outcome is unknown: the
connection dropped (attempts in flight on it are interrupted at once instead of waiting for a reply
that cannot come), no reply within ATTEMPT_TIMEOUT_S, no responders, or JetStream unavailable (a
stream without a leader while the cluster elects one). increment is retried only when the failure
proves its write was not applied (no responders): a retried compare-and-swap whose first attempt
succeeded unseen would add its delta twice.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import json
import re
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, Generic, NoReturn, TypeAlias, TypeVar

import nats
import nats.errors
import nats.js.api as js_api
import nats.js.errors as js_errors
from nats.js.kv import KeyValue

from wasmfleet.host.plugin_api import store_state
from wasmfleet.host.plugin_api.host_plugins import HostContext
from wasmfleet.host.plugins.keyvalue_errors import KeyValueFailure
from wasmfleet.host.plugins.keyvalue_memory import counter_bytes, counter_value
from wasmfleet.host.plugins.nats_blocking import (
    BlockingConnection,
    NotSent,
    OutcomeUnknown,
    Refused,
    Reply,
    decode_headers,
)
from wasmfleet.host.plugins.nats_blocking import supports as lane_supports
from wasmfleet.host.plugins.nats_loop_lane import LoopLane

PAGE = 1000
"""Keys per list-keys page (as upstream's NATS backend)."""

OPERATION_TIMEOUT_S = 10.0
"""Bound of one operation (retries included) when the calling request has no nearer deadline."""

ATTEMPT_TIMEOUT_S = 3.0
"""Bound of one attempt's JetStream request: an idempotent operation whose reply does not come in
this time is sent again (a stream leader that died never answers; its successor is elected in
seconds)."""

MAX_CAS_ATTEMPTS = 1000
"""Bound of one increment's compare-and-swap retries (each retry means another writer won)."""

RETRY_PAUSE_S = (0.02, 0.5)
"""First and longest pause between attempts (doubling): lets a reconnection or an election finish."""

T = TypeVar("T")


class Pending(Generic[T]):
    """An operation under way on a serving loop (`NatsConnections.on_loop`): once `future` is
    done, `then(future)` gives its value, or the next Pending (a retry after a pause)."""

    __slots__ = ("future", "then")

    def __init__(self, future: asyncio.Future[Any],
                 then: Callable[[asyncio.Future[Any]], T | Pending[T]] = asyncio.Future.result) -> None:
        self.future = future
        self.then = then


Answer: TypeAlias = T | Pending[T]
"""A bucket operation's value, or (on a serving loop) the Pending of it (NatsBucket)."""

UNKNOWN_OUTCOME: tuple[type[BaseException], ...] = (
    nats.errors.TimeoutError, nats.errors.ConnectionClosedError, nats.errors.StaleConnectionError,
    nats.errors.OutboundBufferLimitError, nats.errors.ConnectionReconnectingError, TimeoutError, OSError,
    js_errors.ServiceUnavailableError,
)
"""Failures after which an idempotent operation is tried again (its outcome, if any, is unknown)."""
NOT_APPLIED: tuple[type[BaseException], ...] = (nats.errors.NoRespondersError, js_errors.NoStreamResponseError)
"""Failures that prove nothing was applied (no server took the request: e.g. the stream has no
leader while the cluster elects one): any operation may be tried again."""


def server_list(url: str) -> list[str]:
    """The servers of a comma-separated URL list (a cluster's: clients fail over among them)."""
    return [part.strip() for part in url.split(",") if part.strip()]


class ConnectionLost(Exception):
    """An attempt was in flight on a connection that dropped: its reply will never come."""


class _Waiter:
    """One blocked host call: the loop releases `done` once `result`/`error` is set."""

    __slots__ = ("cancelled", "done", "error", "result", "task")

    def __init__(self) -> None:
        self.done = threading.Lock()
        self.done.acquire()
        self.result: Any = None
        self.error: BaseException | None = None
        self.task: asyncio.Task[Any] | None = None
        self.cancelled = False


class NatsConnections:
    """An event loop's NATS connections, by URL: the host process's own loop thread, or (`loop`
    given) a serving loop whose guests run suspended, which use `attempt` instead of `run`."""

    def __init__(self, host: HostContext, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._host = host
        self._thread: threading.Thread | None = None
        self.on_loop = loop is not None
        """The connections belong to a serving loop: operations are coroutines run there."""
        if loop is None:
            self._loop = asyncio.new_event_loop()
            self._thread = threading.Thread(target=self._loop.run_forever, name="keyvalue-nats", daemon=True)
            self._thread.start()
        else:
            self._loop = loop
        self._clients: dict[str, Any] = {}
        self._buckets: dict[tuple[str, str], KeyValue] = {}
        """Only written on the loop thread."""
        self._connecting = asyncio.Lock()
        self._submitted: collections.deque[tuple[_Waiter, Callable[[], Coroutine[Any, Any, Any]]]] = collections.deque()
        self._submit_lock = threading.Lock()
        self._wake_pending = False
        self._in_flight: dict[str, set[asyncio.Task[Any]]] = {}
        """Retryable attempts per connection URL (loop thread only), interrupted when it drops."""
        self._interrupted: set[asyncio.Task[Any]] = set()
        self._lanes = threading.local()
        """Per thread: URL -> its BlockingConnection, or None when it needs nats-py (see `lane`)."""
        self._every_lane: list[BlockingConnection] = []
        self._loop_lanes: dict[str, LoopLane | None] = {}
        """URL -> the serving loop's lane (`on_loop` only), or None when only nats-py reaches it."""
        self._lane_servers: dict[str, list[str]] = {}
        self._closed = False
        self._closing: asyncio.Task[None] | None = None

    def lane(self, url: str) -> BlockingConnection | None:
        """The calling thread's blocking connection to `url` (made on first use), or None when only
        nats-py reaches it (WebSocket, a creds-file login)."""
        by_url: dict[str, BlockingConnection | None] | None = getattr(self._lanes, "by_url", None)
        if by_url is None:
            by_url = self._lanes.by_url = {}
        if url in by_url:
            return by_url[url]
        kwargs = self._host.nats_connect_kwargs(url)
        lane = None
        given = server_list(url)
        if lane_supports(given, kwargs) and not self._closed:
            # One list per URL for every thread's lane: a server the cluster advertised to one of
            # them (after the one named in the URL died, say) is known to all.
            servers = self._lane_servers.setdefault(url, given)
            lane = BlockingConnection(servers, kwargs, name=self._lane_name())
            with self._submit_lock:
                self._every_lane.append(lane)
        by_url[url] = lane
        return lane

    def loop_lane(self, url: str) -> LoopLane | None:
        """The serving loop's lane to `url` (`on_loop` only; connects on first use), or None when
        only nats-py reaches it (WebSocket, a creds-file login)."""
        if url in self._loop_lanes:
            return self._loop_lanes[url]
        kwargs = self._host.nats_connect_kwargs(url)
        given = server_list(url)
        lane = None
        if lane_supports(given, kwargs) and not self._closed:
            lane = LoopLane(list(given), kwargs, name=self._lane_name())
        self._loop_lanes[url] = lane
        return lane

    def _lane_name(self) -> str:
        return " ".join(part for part in ("wasmfleet-host", self._host.host_id, "keyvalue") if part)

    # ---- hand-off between host functions and the loop ---------------------------------------

    def run(self, operation: Callable[[], Awaitable[T]], deadline: float, url: str = "",
            idempotent: bool = False) -> T:
        """Runs `operation()` on the loop, waiting at most until `deadline` (time.monotonic()).
        With `url` and `idempotent`, attempts whose outcome is unknown are retried (see module doc);
        without `idempotent`, only those that provably did nothing."""
        waiter = _Waiter()

        async def attempts() -> T:
            return await self._attempts(operation, deadline, url, idempotent)

        with self._submit_lock:
            self._submitted.append((waiter, attempts))
            wake, self._wake_pending = not self._wake_pending, True
        if wake:
            self._loop.call_soon_threadsafe(self._start_submitted)
        if not waiter.done.acquire(timeout=max(0.05, deadline - time.monotonic())):
            waiter.cancelled = True
            self._loop.call_soon_threadsafe(self._cancel, waiter)
            raise KeyValueFailure("other", "NATS did not answer before the request's deadline")
        if waiter.error is None:
            return waiter.result  # type: ignore[no-any-return]
        self._failure(waiter.error)

    def started(self, coroutine: Coroutine[Any, Any, T]) -> Pending[T]:
        """`coroutine` running as a task of the connections' loop (`on_loop`)."""
        return Pending(self._loop.create_task(coroutine))

    async def attempt(self, operation: Callable[[], Awaitable[T]], deadline: float, url: str = "",
                      idempotent: bool = False) -> T:
        """`run`'s work, awaited on the connections' own loop (`on_loop`): no hand-off."""
        try:
            async with asyncio.timeout(max(0.05, deadline - time.monotonic())):
                return await self._attempts(operation, deadline, url, idempotent)
        except Exception as exc:
            self._failure(exc)

    def _start_submitted(self) -> None:
        """On the loop: starts every operation submitted since the last wake-up."""
        with self._submit_lock:
            batch = list(self._submitted)
            self._submitted.clear()
            self._wake_pending = False
        for waiter, attempts in batch:
            if waiter.cancelled:
                continue
            task: asyncio.Task[Any] = self._loop.create_task(attempts())
            waiter.task = task
            task.add_done_callback(lambda t, w=waiter: self._finish(w, t))  # type: ignore[misc]

    @staticmethod
    def _finish(waiter: _Waiter, task: asyncio.Task[Any]) -> None:
        if task.cancelled():
            waiter.error = FutureTimeout()
        elif (error := task.exception()) is not None:
            waiter.error = error
        else:
            waiter.result = task.result()
        waiter.done.release()

    @staticmethod
    def _cancel(waiter: _Waiter) -> None:
        if waiter.task is not None:
            waiter.task.cancel()

    @staticmethod
    def _failure(exc: BaseException) -> NoReturn:
        """Raises the KeyValueFailure of a nats-py (or our own) exception: the one mapping boundary."""
        if isinstance(exc, KeyValueFailure):
            raise exc
        if isinstance(exc, FutureTimeout):
            raise KeyValueFailure("other", "NATS did not answer before the request's deadline") from None
        if isinstance(exc, js_errors.InvalidKeyError):
            raise KeyValueFailure("other", f"invalid key: {exc}") from None
        if isinstance(exc, ConnectionLost):
            raise KeyValueFailure("other", "NATS: the connection dropped with the operation in flight") from None
        if isinstance(exc, (nats.errors.Error, OSError, TimeoutError)):
            raise KeyValueFailure("other", f"NATS: {type(exc).__name__}: {exc}".rstrip(": ")) from None
        raise exc

    async def _attempts(self, operation: Callable[[], Awaitable[T]], deadline: float, url: str,
                        idempotent: bool) -> T:
        """On the loop: `operation()` until it succeeds, fails for good, or the deadline nears."""
        task = asyncio.current_task()
        assert task is not None
        retryable = (UNKNOWN_OUTCOME + NOT_APPLIED) if idempotent else NOT_APPLIED
        pause = RETRY_PAUSE_S[0]
        in_flight = self._in_flight.setdefault(url, set()) if idempotent and url else None
        while True:
            if in_flight is not None:
                in_flight.add(task)
            try:
                return await operation()
            except asyncio.CancelledError:
                if task not in self._interrupted:
                    raise  # the caller gave up
                self._interrupted.discard(task)
                task.uncancel()
                failure: BaseException = ConnectionLost()
            except retryable as exc:
                failure = exc
            finally:
                if in_flight is not None:
                    in_flight.discard(task)
            if time.monotonic() + pause >= deadline:
                raise failure
            await asyncio.sleep(pause)
            pause = min(pause * 2, RETRY_PAUSE_S[1])

    def _interrupt(self, url: str) -> None:
        """On the loop, when `url`'s connection drops: its idempotent attempts in flight start over
        (their requests went out on the dead socket; a new attempt is sent once reconnected)."""
        for task in self._in_flight.get(url, set()):
            if not task.done():
                self._interrupted.add(task)
                task.cancel()

    async def _client(self, url: str) -> Any:
        async with self._connecting:
            client = self._clients.get(url)
            if client is None or client.is_closed:
                # A comma list names the servers of a cluster: the client fails over among them.
                servers = server_list(url)

                async def disconnected() -> None:
                    self._interrupt(url)

                client = await nats.connect(servers=servers, connect_timeout=2, max_reconnect_attempts=-1,
                                            reconnect_time_wait=0.5, disconnected_cb=disconnected,
                                            **self._host.nats_connect_kwargs(url))
                self._clients[url] = client
            return client

    def known(self, url: str, name: str) -> KeyValue | None:
        """The bucket if it was opened before (from any thread: a dict read, no hop to the loop)."""
        return self._buckets.get((url, name))

    async def open(self, url: str, name: str, create: bool) -> KeyValue:
        # A bucket once found is kept: guests open on every request, and asking JetStream each time
        # would add a round trip to every call (a bucket deleted meanwhile fails its operations).
        known = self._buckets.get((url, name))
        if known is not None:
            return known
        kv = await self._lookup(url, name, create)
        self._buckets[(url, name)] = kv
        return kv

    async def _lookup(self, url: str, name: str, create: bool) -> KeyValue:
        js = (await self._client(url)).jetstream(timeout=ATTEMPT_TIMEOUT_S)
        kv: KeyValue
        try:
            kv = await js.key_value(name)
            return kv
        except js_errors.BucketNotFoundError:
            if not create:
                raise KeyValueFailure("no-such-store", f"no JetStream KV bucket {name!r}") from None
        except js_errors.InvalidBucketNameError:
            raise KeyValueFailure("other", f"invalid bucket name {name!r}") from None
        try:
            # direct: gets are answered by any replica through $JS.API.DIRECT.GET, without the
            # stream API's JSON (upstream's clients create KV buckets so too).
            kv = await js.create_key_value(bucket=name, direct=True)
        except js_errors.BadRequestError:  # created meanwhile by another host or workload
            kv = await js.key_value(name)
        return kv

    def close(self) -> None:
        self._closed = True
        with self._submit_lock:
            lanes, self._every_lane = self._every_lane, []
        for lane in lanes:
            lane.shut()

        async def close_all() -> None:
            for loop_lane in self._loop_lanes.values():
                if loop_lane is not None:
                    loop_lane.shut()
            for client in self._clients.values():
                if not client.is_closed:
                    await client.close()

        if self._thread is None:
            self._close_on_serving_loop(close_all())
            return
        # A server that is down leaves nothing to close cleanly.
        with contextlib.suppress(FutureTimeout, nats.errors.Error, OSError):
            asyncio.run_coroutine_threadsafe(close_all(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        if not self._thread.is_alive():
            self._loop.close()

    def _close_on_serving_loop(self, closing: Coroutine[Any, Any, None]) -> None:
        """Closes the clients of a serving loop: there, from whichever thread asks, if it still runs."""
        loop = self._loop
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            task = loop.create_task(closing)
            self._closing = task  # keeps the task referenced until it ends
        elif loop.is_running() and not loop.is_closed():
            with contextlib.suppress(FutureTimeout, nats.errors.Error, OSError):
                asyncio.run_coroutine_threadsafe(closing, loop).result(5)
        else:
            closing.close()


def deadline() -> float:
    """When the calling guest request gives up (bounded by OPERATION_TIMEOUT_S)."""
    return min(store_state.state().deadline, time.monotonic() + OPERATION_TIMEOUT_S)


async def _get(kv: KeyValue, key: str) -> bytes | None:
    try:
        entry = await kv.get(key)
    except (js_errors.KeyNotFoundError, js_errors.KeyDeletedError):
        return None
    return bytes(entry.value or b"")


_DELETED_OPERATIONS = frozenset({"DEL", "PURGE"})
"""KV-Operation header values of a key's delete or purge marker."""
_DELETED_REASONS = frozenset({"MaxAge", "Purge", "Remove"})
"""Nats-Marker-Reason values (nats-server 2.11+) of markers the server places itself."""


def _marks_deletion(headers: Mapping[str, str]) -> bool:
    """Whether a KV entry with these headers is a delete, purge or server-placed marker (no value)."""
    return (headers.get("KV-Operation") in _DELETED_OPERATIONS
            or headers.get("Nats-Marker-Reason") in _DELETED_REASONS)


async def _list_keys(kv: KeyValue) -> list[str]:
    """The bucket's live keys, sorted.

    Not nats-py's KeyValue.keys(): it decides that it has seen every key from a consumer_info
    taken while its push consumer is already delivering, and can end early (a list of 1,500 keys
    came back with a few hundred). Here a pull consumer is fetched until the pending count of the
    last message delivered is zero, which cannot end early.
    """
    config = js_api.ConsumerConfig(
        deliver_policy=js_api.DeliverPolicy.LAST_PER_SUBJECT,
        ack_policy=js_api.AckPolicy.NONE,
        headers_only=True,
        inactive_threshold=ATTEMPT_TIMEOUT_S,  # the server removes it if an attempt is abandoned
    )
    js, stream, prefix = kv._js, kv._stream, kv._pre  # nats-py keeps them private
    sub = await js.pull_subscribe(f"{prefix}>", stream=stream, config=config)
    try:
        pending = (await sub.consumer_info()).num_pending
        keys: list[str] = []
        while pending:
            for msg in await sub.fetch(min(pending, PAGE), timeout=ATTEMPT_TIMEOUT_S):
                pending = msg.metadata.num_pending
                headers = msg.headers or {}
                if not _marks_deletion(headers):
                    keys.append(msg.subject[len(prefix):])
        return sorted(keys)
    finally:
        with contextlib.suppress(nats.errors.Error):
            await sub.unsubscribe()


async def _increment(kv: KeyValue, key: str, delta: int) -> int:
    for _ in range(MAX_CAS_ATTEMPTS):
        try:
            entry = await kv.get(key)
            current, revision = counter_value(bytes(entry.value or b"")), entry.revision
        except (js_errors.KeyNotFoundError, js_errors.KeyDeletedError):
            current, revision = 0, None
        value = (current + delta) & ((1 << 64) - 1)
        try:
            if revision is None:
                await kv.create(key, counter_bytes(value))
            else:
                await kv.update(key, counter_bytes(value), last=revision)
            return value
        except js_errors.KeyWrongLastSequenceError:
            continue  # another writer won: read again
    raise KeyValueFailure("other", f"increment of {key!r} lost {MAX_CAS_ATTEMPTS} compare-and-swap races")


_VALID_KEY = re.compile(r"[-/_=.a-zA-Z0-9]+")
"""JetStream KV keys (ADR-8, as nats-py checks them): these characters, not starting or ending with '.'."""
_DELETE_HEADERS = {"KV-Operation": "DEL"}


def _checked(key: str) -> str:
    """`key`, when it is a valid KV key (it becomes a subject token: anything else would corrupt the
    protocol line, or address another key)."""
    if not _VALID_KEY.fullmatch(key) or key.startswith(".") or key.endswith("."):
        raise KeyValueFailure("other", f"invalid key {key!r}: use letters, digits and -/_=. (no '.' first or last)")
    return key


class _Tries:
    """The retry rule of a lane operation (every one is idempotent): try again, after a pause
    that doubles, while a failure may pass and the deadline allows; a refusal is final."""

    def __init__(self) -> None:
        self.end = deadline()
        self.pause = RETRY_PAUSE_S[0]

    def attempt_deadline(self) -> float:
        return min(self.end, time.monotonic() + ATTEMPT_TIMEOUT_S)

    def pause_after(self, failure: Exception) -> float:
        """The pause before the next try; raises the KeyValueFailure when there is none."""
        if isinstance(failure, Refused):
            code = "access-denied" if "permissions violation" in str(failure).lower() else "other"
            raise KeyValueFailure(code, f"NATS: {failure}") from None
        pause = self.pause
        if time.monotonic() + pause >= self.end:
            raise KeyValueFailure("other", f"NATS: {failure}") from None
        self.pause = min(pause * 2, RETRY_PAUSE_S[1])
        return pause


def _on_lane(lane: BlockingConnection, subject: str, payload: bytes, headers: dict[str, str] | None,
             outcome: Callable[[Reply], T]) -> T:
    """One lane request and `outcome(reply)`, tried again by the rule of `_Tries` (`outcome`
    raises NotSent for a reply that asks for another try)."""
    tries = _Tries()
    while True:
        try:
            return outcome(lane.request(subject, payload, headers, tries.attempt_deadline()))
        except (NotSent, OutcomeUnknown) as exc:
            time.sleep(tries.pause_after(exc))


def _on_loop_lane(connections: NatsConnections, lane: LoopLane, subject: str, payload: bytes,
                  headers: dict[str, str] | None, outcome: Callable[[Reply], T]) -> Pending[T]:
    """`_on_lane` on a serving loop's lane: the first try goes out at once and its reply is mapped
    as the guest resumes (no task: that is most requests); a try that fails is tried again, after
    its pause, by a task (`_loop_lane_retries`)."""
    tries = _Tries()
    try:
        future = lane.send(subject, payload, headers, tries.attempt_deadline())
    except Refused as exc:
        tries.pause_after(exc)  # raises the KeyValueFailure
        raise
    if future is None:  # not connected yet: the task connects first
        return connections.started(_loop_lane_retries(lane, tries, 0.0, subject, payload, headers, outcome))

    def answered(done: asyncio.Future[Reply]) -> T | Pending[T]:
        try:
            return outcome(done.result())
        except (NotSent, OutcomeUnknown) as exc:
            pause = tries.pause_after(exc)
            return connections.started(_loop_lane_retries(lane, tries, pause, subject, payload, headers, outcome))

    return Pending(future, answered)


async def _loop_lane_retries(lane: LoopLane, tries: _Tries, pause: float, subject: str, payload: bytes,
                             headers: dict[str, str] | None, outcome: Callable[[Reply], T]) -> T:
    while True:
        await asyncio.sleep(pause)
        try:
            return outcome(await lane.request(subject, payload, headers, tries.attempt_deadline()))
        except (NotSent, OutcomeUnknown) as exc:
            pause = tries.pause_after(exc)


def _entry_value(reply: Reply) -> bytes | None:
    """The value of a direct get's reply: None for no entry or a delete/purge/expiry marker."""
    if reply.status == 404:
        return None
    if reply.status:
        raise KeyValueFailure("other", f"NATS: direct get answered status {reply.status}")
    if _marks_deletion(reply.headers):
        return None
    return reply.payload


def _stream_entry_value(reply: Reply) -> bytes | None:
    """The value in a stream API message-get answer (JSON, headers and data in base64)."""
    answer = _json(reply)
    error = answer.get("error")
    if error is not None:
        if error.get("code") == 404:
            return None
        _api_error(error)
    message = answer.get("message") or {}
    _, headers = decode_headers(base64.b64decode(message.get("hdrs") or ""))
    if _marks_deletion(headers):
        return None
    return base64.b64decode(message.get("data") or "")


def _json(reply: Reply) -> dict[str, Any]:
    try:
        answer = json.loads(reply.payload)
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        raise KeyValueFailure("other", f"NATS: not a JetStream answer: {reply.payload[:80]!r}")
    return answer


def _api_error(error: Mapping[str, Any]) -> NoReturn:
    if error.get("code") == 503:  # JetStream unavailable (e.g. the stream is electing a leader)
        raise NotSent(f"JetStream: {error.get('description', 'unavailable')}")
    raise KeyValueFailure("other", f"NATS JetStream: {error.get('description', error)}")


def _stored(reply: Reply) -> None:
    """Checks a JetStream publish acknowledgement."""
    error = _json(reply).get("error")
    if error is not None:
        _api_error(error)


class _NoLane:
    """No lane reaches the bucket's servers: nats-py does the operation."""


NO_LANE = _NoLane()


class NatsBucket:
    """One JetStream KV bucket: the functions of wasi:keyvalue/store, atomics and batch.

    On connections of a serving loop (`NatsConnections.on_loop`) each returns a coroutine of its
    answer instead of the answer (see the module doc)."""

    def __init__(self, connections: NatsConnections, kv: KeyValue, url: str = "") -> None:
        self._nats = connections
        self._kv = kv
        self._url = url
        # The lane's subjects, as nats-py's KeyValue forms them (it keeps them private). A bucket
        # without direct gets is read through the stream API, which answers in JSON.
        self._key_prefix: str = kv._pre
        self._direct = bool(kv._direct)
        api = kv._js._prefix
        self._get_subject = f"{api}.DIRECT.GET.{kv._stream}." if self._direct else f"{api}.STREAM.MSG.GET.{kv._stream}"

    def _do(self, operation: Callable[[], Awaitable[T]], idempotent: bool = True) -> Answer[T]:
        """`operation` on the event loop within the request's deadline: its answer, or (serving
        loop) the coroutine of it."""
        if self._nats.on_loop:
            return self._nats.started(self._nats.attempt(operation, deadline(), self._url, idempotent))
        return self._nats.run(operation, deadline(), self._url, idempotent)

    def _via_lane(self, subject: str, payload: bytes, headers: dict[str, str] | None,
                  outcome: Callable[[Reply], T]) -> Answer[T] | _NoLane:
        """One request on this thread's lane or the serving loop's; NO_LANE when there is none
        (then nats-py does the operation)."""
        if self._nats.on_loop:
            loop_lane = self._nats.loop_lane(self._url)
            if loop_lane is None:
                return NO_LANE
            return _on_loop_lane(self._nats, loop_lane, subject, payload, headers, outcome)
        lane = self._nats.lane(self._url)
        return NO_LANE if lane is None else _on_lane(lane, subject, payload, headers, outcome)

    def get(self, key: str) -> Answer[bytes | None]:
        subject = f"{self._key_prefix}{_checked(key)}"
        if self._direct:
            answer = self._via_lane(f"{self._get_subject}{subject}", b"", None, _entry_value)
        else:
            request = json.dumps({"last_by_subj": subject}).encode()
            answer = self._via_lane(self._get_subject, request, None, _stream_entry_value)
        if not isinstance(answer, _NoLane):
            return answer
        kv = self._kv
        return self._do(lambda: _get(kv, key))

    def set(self, key: str, value: bytes) -> Answer[None]:
        answer = self._via_lane(f"{self._key_prefix}{_checked(key)}", value, None, _stored)
        if not isinstance(answer, _NoLane):
            return answer
        kv = self._kv

        async def put() -> None:
            await kv.put(key, value)

        return self._do(put)

    def delete(self, key: str) -> Answer[None]:
        answer = self._via_lane(f"{self._key_prefix}{_checked(key)}", b"", _DELETE_HEADERS, _stored)
        if not isinstance(answer, _NoLane):
            return answer
        kv = self._kv

        async def delete() -> None:
            await kv.delete(key)

        return self._do(delete)

    def exists(self, key: str) -> Answer[bool]:
        return then(self.get(key), _is_some)

    def list_keys(self, cursor: int) -> Answer[tuple[list[str], int | None]]:
        kv = self._kv

        def page(keys: list[str]) -> tuple[list[str], int | None]:
            following = cursor + PAGE
            return keys[cursor:following], (following if following < len(keys) else None)

        return then(self._do(lambda: _list_keys(kv)), page)

    # The operations below go through nats-py, whose refusal of a bad key does not name it: keys are
    # checked here first, with the lanes' message.

    def increment(self, key: str, delta: int) -> Answer[int]:
        kv = self._kv
        _checked(key)
        return self._do(lambda: _increment(kv, key, delta), idempotent=False)

    def get_many(self, keys: list[str]) -> Answer[list[tuple[str, bytes] | None]]:
        for key in keys:
            _checked(key)

        async def get_all() -> list[bytes | None]:
            return list(await asyncio.gather(*(_get(self._kv, k) for k in keys)))

        def pairs(values: list[bytes | None]) -> list[tuple[str, bytes] | None]:
            return [(k, v) if v is not None else None for k, v in zip(keys, values, strict=True)]

        return then(self._do(get_all), pairs)

    def set_many(self, pairs: list[tuple[str, bytes]]) -> Answer[None]:
        for key, _ in pairs:
            _checked(key)

        async def put_all() -> None:
            await asyncio.gather(*(self._kv.put(k, v) for k, v in pairs))

        return self._do(put_all)

    def delete_many(self, keys: list[str]) -> Answer[None]:
        for key in keys:
            _checked(key)

        async def delete_all() -> None:
            await asyncio.gather(*(self._kv.delete(k) for k in keys))

        return self._do(delete_all)

    def close(self) -> None:
        """A guest dropped its handle; the bucket stays."""


def _is_some(value: bytes | None) -> bool:
    return value is not None


U = TypeVar("U")


def then(answer: Answer[T], step: Callable[[T], U]) -> Answer[U]:
    """`step` applied to an answer, now or (a Pending's) once it is there."""
    if isinstance(answer, Pending):
        pending = answer
        return Pending(pending.future, lambda future: then(pending.then(future), step))
    return step(answer)
