"""The Redis backend of wasi:keyvalue (redis-py, synchronous: host functions run on the guest's thread).

A bucket is a key prefix in one Redis database: the entry's `config.prefix` (default none), and on the
unnamed path also `<identifier>:` so buckets opened by different identifiers stay apart. Values are
stored as they are; counters are 8-byte big-endian unsigned integers, as on every other backend (a
value of another length counts as 0), so `increment` is a WATCH/MULTI compare-and-swap loop rather
than Redis's decimal INCRBY. list-keys collects the bucket's keys (SCAN, never KEYS), sorts them and
pages 1000 at a time with the offset as cursor, like the NATS backend.

One connection pool per URL per host process, shared by every workload there. Socket timeouts bound
each call, so a Redis that is down or stuck gives error::other with the cause instead of a hung guest,
and the pool reconnects by itself once Redis is back. redis-py's exceptions are mapped here, at this
one boundary, to `KeyValueFailure`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar, cast

import redis
import redis.exceptions

from wasmfleet.host.plugins.keyvalue_errors import KeyValueFailure
from wasmfleet.host.plugins.keyvalue_memory import counter_bytes, counter_value

PAGE = 1000
"""Keys per list-keys page."""

CONNECT_TIMEOUT_S = 2.0
SOCKET_TIMEOUT_S = 5.0
"""Bound of one Redis command (below the host's default request deadline)."""

MAX_CAS_ATTEMPTS = 1000

T = TypeVar("T")


def _redis_call(fn: Callable[[], T]) -> T:
    try:
        return fn()
    except redis.exceptions.WatchError:
        raise
    except redis.exceptions.RedisError as exc:
        raise KeyValueFailure("other", f"Redis: {type(exc).__name__}: {exc}") from None
    except OSError as exc:
        raise KeyValueFailure("other", f"Redis: {exc.strerror or exc}") from None


class RedisPools:
    """One connection pool per Redis URL, for the whole host process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._clients: dict[str, redis.Redis] = {}

    def client(self, url: str) -> redis.Redis:
        with self._lock:
            client = self._clients.get(url)
            if client is None:
                try:
                    pool = redis.ConnectionPool.from_url(
                        url, socket_connect_timeout=CONNECT_TIMEOUT_S, socket_timeout=SOCKET_TIMEOUT_S,
                        health_check_interval=30)
                except ValueError as exc:
                    raise KeyValueFailure("other", f"invalid Redis URL {url!r}: {exc}") from None
                client = redis.Redis(connection_pool=pool)
                self._clients[url] = client
            return client

    def close(self) -> None:
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.close()
            client.connection_pool.disconnect()


class RedisBucket:
    """The keys under one prefix: the functions of wasi:keyvalue/store, atomics and batch."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self._redis = client
        self._prefix = prefix.encode()

    def _key(self, key: str) -> bytes:
        return self._prefix + key.encode()

    def get(self, key: str) -> bytes | None:
        value = _redis_call(lambda: self._redis.get(self._key(key)))
        return None if value is None else bytes(value)  # type: ignore[arg-type]

    def set(self, key: str, value: bytes) -> None:
        _redis_call(lambda: self._redis.set(self._key(key), value))

    def delete(self, key: str) -> None:
        _redis_call(lambda: self._redis.delete(self._key(key)))

    def exists(self, key: str) -> bool:
        return bool(_redis_call(lambda: self._redis.exists(self._key(key))))

    def list_keys(self, cursor: int) -> tuple[list[str], int | None]:
        pattern = _glob_escape(self._prefix) + b"*"

        def scan() -> list[str]:
            start = len(self._prefix)
            return sorted({bytes(k)[start:].decode(errors="replace")
                           for k in self._redis.scan_iter(match=pattern, count=1000)})

        keys = _redis_call(scan)
        following = cursor + PAGE
        return keys[cursor:following], (following if following < len(keys) else None)

    def increment(self, key: str, delta: int) -> int:
        name = self._key(key)

        def attempt() -> int | None:
            with self._redis.pipeline() as pipe:
                try:
                    pipe.watch(name)  # type: ignore[no-untyped-call]
                    raw = pipe.get(name)
                    current = counter_value(None if raw is None else bytes(cast(bytes, raw)))
                    value = (current + delta) & ((1 << 64) - 1)
                    pipe.multi()
                    pipe.set(name, counter_bytes(value))
                    pipe.execute()
                    return value
                except redis.exceptions.WatchError:
                    return None  # another writer changed the key between GET and EXEC: read again

        for _ in range(MAX_CAS_ATTEMPTS):
            value = _redis_call(attempt)
            if value is not None:
                return value
        raise KeyValueFailure("other", f"increment of {key!r} lost {MAX_CAS_ATTEMPTS} compare-and-swap races")

    def get_many(self, keys: list[str]) -> list[tuple[str, bytes] | None]:
        if not keys:
            return []
        values = _redis_call(lambda: self._redis.mget([self._key(k) for k in keys]))
        return [(k, bytes(v)) if v is not None else None for k, v in zip(keys, values, strict=True)]  # type: ignore[arg-type]

    def set_many(self, pairs: list[tuple[str, bytes]]) -> None:
        if pairs:
            _redis_call(lambda: self._redis.mset({self._key(k): v for k, v in pairs}))

    def delete_many(self, keys: list[str]) -> None:
        if keys:
            _redis_call(lambda: self._redis.delete(*(self._key(k) for k in keys)))

    def close(self) -> None:
        """A guest dropped its handle; the pool stays with the host."""


def _glob_escape(prefix: bytes) -> bytes:
    """The prefix as a literal in a SCAN MATCH pattern (Redis globs: * ? [ ] and backslash)."""
    out = bytearray()
    for byte in prefix:
        if byte in b"*?[]\\":
            out += b"\\"
        out.append(byte)
    return bytes(out)

