"""wasmcloud:messaging@0.2.0 over core NATS: types and consumer imported, handler exported.

consumer.publish is a plain core-NATS publish; consumer.request waits for the first reply at most
timeout_ms (then "request timed out after N ms"). The handler side (subscriptions, delivery to
components) lives in the runtime (runtime/messaging_dispatch.py), which uses this module's
`MessagingBus` for its subscriptions, so one process holds one data connection.

nats-py is asyncio and guest calls are not: one event-loop thread per process owns the
connection, and guest threads hand it work. nats-py's exceptions are mapped to the interface's
error strings here, at this one boundary.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, TypeVar

import nats
import nats.errors

from wasmfleet.bus import subscribing
from wasmfleet.host.plugin_api import store_state
from wasmfleet.host.plugin_api.host_plugins import ConfigKey, HostContext, HostPlugin
from wasmfleet.host.plugin_api.interfaces import Interface, err, ok
from wasmfleet.host.plugins import messaging_config

T = TypeVar("T")
log = logging.getLogger(__name__)

PENDING_MSGS_LIMIT = 1024
"""Messages a subscription buffers in this process before NATS-side drops (slow consumer): with
admission, the bound of what a flood can make a host hold."""
PENDING_BYTES_LIMIT = 16 << 20
CONNECT_BOUND_S = 10.0
"""How long the first connection of a process may take before subscribing fails (retryable)."""


class MessagingUnavailable(Exception):
    """No data connection (no NATS known to this process, or it is closed)."""


def data_connection(host: HostContext) -> tuple[str, dict[str, Any]]:
    """The data plane's NATS servers and nats.connect options (credentials): the ONE place that
    chooses them: the host's data plane (`--data-nats` and its login; under `wasmfleet up` the `data`
    identity), as HostContext carries it."""
    return host.nats_url, host.nats_connect_kwargs(host.nats_url)


class MessagingBus:
    """This process's data connection to NATS and the event-loop thread that owns it."""

    def __init__(self, url: str, options: dict[str, Any] | None = None) -> None:
        self.url = url
        self.options = options or {}
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="messaging-nats", daemon=True)
        self._thread.start()
        self._client: Any = None
        self._connecting = asyncio.Lock()
        self.slow_consumer_drops = 0
        self._outbox: list[tuple[str, bytes, str]] = []
        self._outbox_lock = threading.Lock()
        self._draining = False
        self._drains: set[asyncio.Task[None]] = set()
        """Messages nats-py discarded because a subscription's pending buffer was full."""

    def run(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        """Runs `coro` on the loop from another thread, waiting at most `timeout` seconds."""
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(max(0.01, timeout))
        except FutureTimeout:
            future.cancel()
            raise TimeoutError from None

    async def client(self) -> Any:
        async with self._connecting:
            if self._client is None or self._client.is_closed:
                if not self.url:
                    raise MessagingUnavailable("this host has no NATS data connection")

                async def error(exc: Exception) -> None:
                    if isinstance(exc, nats.errors.SlowConsumerError):
                        self.slow_consumer_drops += 1

                servers = [u.strip() for u in self.url.split(",") if u.strip()]
                try:
                    # Reconnects forever once connected, but the first connection is bounded: with
                    # max_reconnect_attempts=-1 nats-py would retry it forever (auth refused included).
                    async with asyncio.timeout(CONNECT_BOUND_S):
                        self._client = await nats.connect(
                            servers=servers, name="wasmfleet-messaging", connect_timeout=2,
                            max_reconnect_attempts=-1, reconnect_time_wait=0.5, error_cb=error, **self.options)
                except (nats.errors.Error, OSError, TimeoutError) as exc:
                    raise MessagingUnavailable(f"cannot connect to NATS at {self.url}: "
                                               f"{str(exc) or type(exc).__name__}") from None
            return self._client

    async def subscribe(self, subject: str, queue: str | None, cb: Callable[[Any], Awaitable[None]]) -> Any:
        """A live subscription (flushed: the server has it when this returns). MessagingUnavailable
        when NATS cannot be reached or refuses the subscription."""
        try:
            client = await self.client()
            sub = await client.subscribe(subject, queue=queue or "", cb=cb, pending_msgs_limit=PENDING_MSGS_LIMIT,
                                         pending_bytes_limit=PENDING_BYTES_LIMIT)
            await subscribing.in_effect(client, timeout=5)
        except (nats.errors.Error, OSError, TimeoutError) as exc:
            raise MessagingUnavailable(f"NATS data connection {self.url}: subscribing to {subject}: "
                                       f"{str(exc) or type(exc).__name__}") from None
        return sub

    async def publish(self, subject: str, body: bytes, reply: str) -> None:
        await (await self.client()).publish(subject, body, reply=reply)

    def connect_soon(self) -> None:
        """On the loop: starts connecting in the background (failures are retried on use)."""
        async def connect() -> None:
            try:
                await self.client()
            except Exception as exc:
                log.warning("NATS data connection to %s: %s", self.url, exc or type(exc).__name__)

        task = self.loop.create_task(connect())
        self._drains.add(task)
        task.add_done_callback(self._drains.discard)

    def publish_soon(self, subject: str, body: bytes, reply: str) -> None:
        """Queues a publish from any thread without waiting for the loop (core NATS publishing is
        fire-and-forget anyway). Raises MessagingUnavailable when there is no open connection."""
        if not self.url:
            raise MessagingUnavailable("this host has no NATS data connection")
        with self._outbox_lock:
            self._outbox.append((subject, body, reply))
            if self._draining:
                return
            self._draining = True
        if self.on_loop_thread():  # a handler running inline on the loop
            self.loop.call_soon(self._start_drain)
        else:  # one wake-up of the loop per batch, however many publishes it carries
            self.loop.call_soon_threadsafe(self._start_drain)

    def on_loop_thread(self) -> bool:
        return threading.current_thread() is self._thread

    def _start_drain(self) -> None:
        task = self.loop.create_task(self._drain())
        self._drains.add(task)
        task.add_done_callback(self._drains.discard)

    async def _drain(self) -> None:
        while True:
            with self._outbox_lock:
                if not self._outbox:
                    self._draining = False
                    return
                batch, self._outbox = self._outbox, []
            for subject, body, reply in batch:
                try:
                    await (await self.client()).publish(subject, body, reply=reply)
                except Exception as exc:  # no connection: the guest was told ok, as core NATS would
                    log.warning("publish to %s lost: %s", subject, exc)

    async def request(self, subject: str, body: bytes, timeout_s: float) -> Any:
        return await (await self.client()).request(subject, body, timeout=timeout_s)

    def close(self) -> None:
        async def close_client() -> None:
            if self._client is not None and not self._client.is_closed:
                await self._client.close()

        with contextlib.suppress(Exception):  # best effort: the process is stopping its data plane
            asyncio.run_coroutine_threadsafe(close_client(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        if not self._thread.is_alive():
            self.loop.close()


_bus: MessagingBus | None = None
_bus_lock = threading.Lock()


def open_bus(host: HostContext) -> MessagingBus:
    """This process's bus (created on first use)."""
    global _bus
    with _bus_lock:
        if _bus is None:
            _bus = MessagingBus(*data_connection(host))
        return _bus


def close_bus() -> None:
    global _bus
    with _bus_lock:
        bus, _bus = _bus, None
    if bus is not None:
        bus.close()


def current_bus() -> MessagingBus:
    if _bus is None:
        raise MessagingUnavailable("wasmcloud:messaging is not started in this process")
    return _bus


def _wait_budget() -> float:
    """Seconds the calling guest may still wait (its deadline), at most 60."""
    return min(60.0, store_state.state().deadline - time.monotonic())


def _publish(msg: tuple[str, bytes, str | None]) -> tuple[str, Any]:
    subject, body, reply_to = msg
    problem = messaging_config.publish_subject_problem(subject)
    if problem:
        return err(f"invalid subject: {problem}")
    if reply_to is not None and messaging_config.publish_subject_problem(reply_to):
        return err(f"invalid reply-to: {messaging_config.publish_subject_problem(reply_to)}")
    try:
        current_bus().publish_soon(subject, bytes(body), reply_to or "")
    except MessagingUnavailable as exc:
        return err(f"publish failed: {exc}")
    return ok(None)


def _request(subject: str, body: bytes, timeout_ms: int) -> tuple[str, Any]:
    problem = messaging_config.publish_subject_problem(subject)
    if problem:
        return err(f"invalid subject: {problem}")
    timeout_s = timeout_ms / 1000
    budget = _wait_budget()
    if budget <= 0:
        return err(f"request timed out after {timeout_ms} ms")
    try:
        bus = current_bus()
        if bus.on_loop_thread():  # a guest run inline must not wait for the loop it holds (never so)
            return err("request failed: not allowed from a handler running on the NATS loop")
        reply = bus.run(bus.request(subject, bytes(body), min(timeout_s, budget)), min(timeout_s, budget) + 1)
    except (TimeoutError, nats.errors.TimeoutError):
        return err(f"request timed out after {timeout_ms} ms")
    except nats.errors.NoRespondersError:
        return err(f"no responders on {subject}")
    except (MessagingUnavailable, nats.errors.Error, OSError) as exc:
        return err(f"request failed: {str(exc) or type(exc).__name__}")
    return ok((reply.subject, bytes(reply.data), reply.reply or None))


class MessagingPlugin(HostPlugin):
    """wasmcloud:messaging/{types,consumer} for guests, and the handler export the host calls."""

    name = "wasmcloud-messaging"
    version = "0.2.0"
    config_keys = (
        ConfigKey("subscriptions", doc="comma-separated NATS subjects the handler receives"),
        ConfigKey("consumer_group", doc="NATS queue group; 'broadcast' = plain subscription"),
        ConfigKey("max_in_flight", doc="messages handled at once per component and host (32)"),
        ConfigKey("admission_wait", doc="wait for a free slot before dropping (30 s, at most 600 s)"),
        ConfigKey("handler_timeout", doc="deadline of one handle-message call (the host's request timeout)"),
    )
    exports = ("wasmcloud:messaging/handler",)

    def interfaces(self) -> tuple[Interface, ...]:
        return (
            Interface("wasmcloud:messaging/types", {}),
            # request waits for the reply; publish only queues the message (`publish_soon`).
            Interface("wasmcloud:messaging/consumer", {"publish": _publish, "request": _request},
                      blocking_functions=frozenset({"request"})),
        )

    def config_problems(self, config: Mapping[str, str]) -> list[str]:
        return super().config_problems(config) + [f"config.{p}" for p in messaging_config.value_problems(config)]

    def start_host(self, host: HostContext) -> None:
        bus = open_bus(host)
        if bus.url:  # connect now, not on the first message
            bus.loop.call_soon_threadsafe(bus.connect_soon)

    def stop_host(self) -> None:
        close_bus()
