"""nats-py's asyncio client, used from the guest's synchronous thread.

Guests run on a wasm thread (or worker process) and call host functions synchronously; nats-py is
asyncio. A `NatsBridge` owns one connection per NATS URL in this host process (shared by every
workload here, opened at the plugin's host start) on an event loop running in a thread of its
own. A host function hands it a coroutine (`run_coroutine_threadsafe`) and waits for the result,
never past the request's deadline (`store_state`), and sends what the guest already wrote to its
HTTP response before it blocks (`before_wait`).

The connection keeps (re)connecting in the background for as long as the bridge lives. While it is
down, a call waits `UNREACHABLE_GRACE_S` for it to come back, then fails with the last connection
error: the guest gets an error string naming NATS and the cause, and the next call after NATS
returns works.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from wasmtime import WasmtimeError

from wasmfleet.host.plugin_api import store_state
from wasmfleet.host.plugins.blobstore.backends import BlobstoreError

log = logging.getLogger(__name__)

T = TypeVar("T")

UNREACHABLE_GRACE_S = 2.0
"""How long a call waits for a lost connection to come back before failing (a server restart
usually takes less; a guest should not sit for long on a backend that is down)."""
API_TIMEOUT_S = 5.0
"""Per JetStream API request (nats-py's own default)."""
OUTSIDE_GUEST_TIMEOUT_S = 30.0
"""Bound on a wait when no guest call (and so no request deadline) is current."""
EXECUTOR_THREADS = 64
"""nats-py reads a streamed put's source in the loop's executor: one thread per body in flight."""


def describe(exc: BaseException) -> str:
    text = str(exc).strip()
    name = type(exc).__name__
    return f"{name}: {text}" if text and name not in text else (text or name)


class NatsBridge:
    """One NATS connection (to `url`, comma-separated servers) on a loop thread of its own."""

    def __init__(self, url: str, connect_kwargs: dict[str, Any] | None = None) -> None:
        self.url = url
        self._connect_kwargs = dict(connect_kwargs or {})  # the data-plane login (HostContext)
        self.servers = [s.strip() for s in url.split(",") if s.strip()]
        self._loop = asyncio.new_event_loop()
        self._loop.set_default_executor(
            concurrent.futures.ThreadPoolExecutor(EXECUTOR_THREADS, thread_name_prefix="blobstore-nats")
        )
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"blobstore-nats {url}", daemon=True)
        self._nc: NatsClient | None = None
        self._js: JetStreamContext | None = None
        self.last_error = "connecting"
        self._closed = False
        self._thread.start()
        self._connecting = asyncio.run_coroutine_threadsafe(self._connect(), self._loop)

    # ---- on the loop ---------------------------------------------------------------------------

    async def _on_error(self, exc: Exception) -> None:
        self.last_error = describe(exc)

    async def _on_disconnected(self) -> None:
        if not self._closed:  # (a close disconnects too)
            log.warning("blobstore: NATS %s disconnected (%s); reconnecting", self.url, self.last_error)

    async def _on_reconnected(self) -> None:
        log.info("blobstore: NATS %s reconnected", self.url)

    async def _connect(self) -> None:
        # max_reconnect_attempts=-1: nats-py retries the first connect too, forever, and reconnects
        # after any later loss; calls meanwhile fail after the grace period (see `_jetstream`).
        nc = NatsClient()
        self._nc = nc
        await nc.connect(
            servers=self.servers, name="wasmfleet-blobstore", connect_timeout=2, reconnect_time_wait=1,
            max_reconnect_attempts=-1, error_cb=self._on_error, disconnected_cb=self._on_disconnected,
            reconnected_cb=self._on_reconnected, **self._connect_kwargs,
        )
        self._js = nc.jetstream(timeout=API_TIMEOUT_S)

    async def jetstream(self) -> JetStreamContext:
        """The JetStream context once connected; BlobstoreError while NATS stays unreachable."""
        give_up = time.monotonic() + UNREACHABLE_GRACE_S
        while True:
            nc, js = self._nc, self._js
            if nc is not None and js is not None and nc.is_connected:
                return js
            if time.monotonic() >= give_up or self._closed:
                raise BlobstoreError(f"NATS at {self.url} is unreachable: {self.last_error}")
            await asyncio.sleep(0.05)

    # ---- from the guest's thread ---------------------------------------------------------------

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Starts `coro` on the bridge's loop (a body being streamed); does not wait."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def call(self, op: Callable[[JetStreamContext], Coroutine[Any, Any, T]]) -> T:
        """Runs op(jetstream) on the loop and waits for its result (see `wait`)."""

        async def run() -> T:
            return await op(await self.jetstream())

        return self.wait(self.submit(run()))

    def wait(self, future: concurrent.futures.Future[T]) -> T:
        """The future's result, waiting at most until the current request's deadline (then the
        work is cancelled and DeadlineExceeded raised, as for any host call that waits)."""
        try:
            state: store_state.WasiContext | None = store_state.state()
        except WasmtimeError:
            state = None  # not inside a guest call (tests, host start)
        remaining = OUTSIDE_GUEST_TIMEOUT_S if state is None else state.deadline - time.monotonic()
        if state is not None and state.before_wait is not None and not future.done():
            state.before_wait()
        try:
            return future.result(timeout=max(0.0, remaining))
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise store_state.DeadlineExceeded("request deadline exceeded while waiting for NATS") from None

    def close(self) -> None:
        """Closes the connection and stops the loop (host stop). Safe twice."""
        if self._closed:
            return
        self._closed = True

        async def shutdown() -> None:
            self._connecting.cancel()
            if self._nc is not None and not self._nc.is_closed:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self._nc.close(), 2.0)

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(timeout=5.0)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5.0)
        if not self._thread.is_alive():
            self._loop.close()
