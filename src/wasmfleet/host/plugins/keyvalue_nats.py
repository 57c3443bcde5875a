"""The NATS JetStream KV backend of wasi:keyvalue: a bucket is the JetStream KV bucket of that name.

nats-py is asyncio and host functions are not: one event-loop thread per host process owns the
connections (one per NATS URL, shared by every workload) and host functions wait for their
operation there, at most until the request's deadline. nats-py's exceptions are mapped here, at
this one boundary, to `KeyValueFailure` (error::other with the cause, error::no-such-store).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Coroutine
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, TypeVar

import nats
import nats.errors
import nats.js.errors as js_errors
from nats.js.kv import KeyValue

from wasmfleet.host.plugin_api import store_state
from wasmfleet.host.plugin_api.host_plugins import HostContext
from wasmfleet.host.plugins.keyvalue_errors import KeyValueFailure
from wasmfleet.host.plugins.keyvalue_memory import counter_bytes, counter_value

PAGE = 1000
"""Keys per list-keys page (as upstream's NATS backend)."""

OPERATION_TIMEOUT_S = 10.0
"""Bound of one operation when the calling request has no nearer deadline."""

MAX_CAS_ATTEMPTS = 1000
"""Bound of one increment's compare-and-swap retries (each retry means another writer won)."""

T = TypeVar("T")



class NatsConnections:
    """The host process's event-loop thread and its NATS connections, by URL."""

    def __init__(self, host: HostContext) -> None:
        self._host = host
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="keyvalue-nats", daemon=True)
        self._thread.start()
        self._clients: dict[str, Any] = {}
        self._buckets: dict[tuple[str, str], KeyValue] = {}
        """Only touched on the loop thread."""
        self._connecting = asyncio.Lock()

    def run(self, coro: Coroutine[Any, Any, T], deadline: float) -> T:
        """Runs `coro` on the loop, waiting at most until `deadline` (time.monotonic())."""
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(max(0.05, deadline - time.monotonic()))
        except FutureTimeout:
            future.cancel()
            raise KeyValueFailure("other", "NATS did not answer before the request's deadline") from None
        except KeyValueFailure:
            raise
        except js_errors.InvalidKeyError as exc:
            raise KeyValueFailure("other", f"invalid key: {exc}") from None
        except (nats.errors.Error, OSError, TimeoutError) as exc:
            raise KeyValueFailure("other", f"NATS: {type(exc).__name__}: {exc}".rstrip(": ")) from None

    async def _client(self, url: str) -> Any:
        async with self._connecting:
            client = self._clients.get(url)
            if client is None or client.is_closed:
                # A comma list names the servers of a cluster: the client fails over among them.
                servers = [part.strip() for part in url.split(",") if part.strip()]
                client = await nats.connect(servers=servers, connect_timeout=2, max_reconnect_attempts=-1,
                                            reconnect_time_wait=0.5, **self._host.nats_connect_kwargs(url))
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
        js = (await self._client(url)).jetstream()
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
        async def close_all() -> None:
            for client in self._clients.values():
                if not client.is_closed:
                    await client.close()

        # A server that is down leaves nothing to close cleanly.
        with contextlib.suppress(FutureTimeout, nats.errors.Error, OSError):
            asyncio.run_coroutine_threadsafe(close_all(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        if not self._thread.is_alive():
            self._loop.close()


def deadline() -> float:
    """When the calling guest request gives up (bounded by OPERATION_TIMEOUT_S)."""
    return min(store_state.state().deadline, time.monotonic() + OPERATION_TIMEOUT_S)


async def _get(kv: KeyValue, key: str) -> bytes | None:
    try:
        entry = await kv.get(key)
    except (js_errors.KeyNotFoundError, js_errors.KeyDeletedError):
        return None
    return bytes(entry.value or b"")


async def _list_keys(kv: KeyValue) -> list[str]:
    try:
        return sorted(await kv.keys())
    except js_errors.NoKeysError:
        return []


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


class NatsBucket:
    """One JetStream KV bucket: the functions of wasi:keyvalue/store, atomics and batch."""

    def __init__(self, connections: NatsConnections, kv: KeyValue) -> None:
        self._nats = connections
        self._kv = kv

    def get(self, key: str) -> bytes | None:
        return self._nats.run(_get(self._kv, key), deadline())

    def set(self, key: str, value: bytes) -> None:
        self._nats.run(self._kv.put(key, value), deadline())

    def delete(self, key: str) -> None:
        self._nats.run(self._kv.delete(key), deadline())

    def exists(self, key: str) -> bool:
        return self.get(key) is not None

    def list_keys(self, cursor: int) -> tuple[list[str], int | None]:
        keys = self._nats.run(_list_keys(self._kv), deadline())
        following = cursor + PAGE
        return keys[cursor:following], (following if following < len(keys) else None)

    def increment(self, key: str, delta: int) -> int:
        return self._nats.run(_increment(self._kv, key, delta), deadline())

    def get_many(self, keys: list[str]) -> list[tuple[str, bytes] | None]:
        async def get_all() -> list[bytes | None]:
            return list(await asyncio.gather(*(_get(self._kv, k) for k in keys)))

        values = self._nats.run(get_all(), deadline())
        return [(k, v) if v is not None else None for k, v in zip(keys, values, strict=True)]

    def set_many(self, pairs: list[tuple[str, bytes]]) -> None:
        async def put_all() -> None:
            await asyncio.gather(*(self._kv.put(k, v) for k, v in pairs))

        self._nats.run(put_all(), deadline())

    def delete_many(self, keys: list[str]) -> None:
        async def delete_all() -> None:
            await asyncio.gather(*(self._kv.delete(k) for k in keys))

        self._nats.run(delete_all(), deadline())

    def close(self) -> None:
        """A guest dropped its handle; the bucket stays."""
