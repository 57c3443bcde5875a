"""The in-memory backend of wasi:keyvalue: buckets per workload, in the process serving it.

Keys list in sorted order, 100 per page, the cursor being the offset of the next page. `increment`
reads, adds and writes under the buckets' lock, so concurrent increments never lose one. Values of
counters are 8-byte big-endian unsigned integers, as on the NATS backend (anything else counts
as 0).
"""

from __future__ import annotations

import threading

PAGE = 100
"""Keys per list-keys page."""

_U64 = (1 << 64) - 1


def counter_value(raw: bytes | None) -> int:
    """The u64 a stored value holds: 8 bytes big-endian, anything else (or nothing) counts as 0."""
    return int.from_bytes(raw, "big") if raw is not None and len(raw) == 8 else 0


def counter_bytes(value: int) -> bytes:
    return (value & _U64).to_bytes(8, "big")


class MemoryBuckets:
    """Every bucket of one workload (created on first open, gone with the workload)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.buckets: dict[str, dict[str, bytes]] = {}

    def bucket(self, name: str) -> MemoryBucket:
        with self.lock:
            data = self.buckets.setdefault(name, {})
        return MemoryBucket(self.lock, data)


class MemoryBucket:
    """One bucket: the functions of wasi:keyvalue/store, atomics and batch on a dict."""

    def __init__(self, lock: threading.Lock, data: dict[str, bytes]) -> None:
        self._lock = lock
        self._data = data

    def get(self, key: str) -> bytes | None:
        with self._lock:
            return self._data.get(key)

    def set(self, key: str, value: bytes) -> None:
        with self._lock:
            self._data[key] = value

    def delete(self, key: str) -> None:
        with self._lock:
            self._data.pop(key, None)

    def exists(self, key: str) -> bool:
        with self._lock:
            return key in self._data

    def list_keys(self, cursor: int) -> tuple[list[str], int | None]:
        with self._lock:
            keys = sorted(self._data)
        page = keys[cursor:cursor + PAGE]
        following = cursor + PAGE
        return page, (following if following < len(keys) else None)

    def increment(self, key: str, delta: int) -> int:
        with self._lock:
            value = (counter_value(self._data.get(key)) + delta) & _U64
            self._data[key] = counter_bytes(value)
            return value

    def get_many(self, keys: list[str]) -> list[tuple[str, bytes] | None]:
        with self._lock:
            return [(k, self._data[k]) if k in self._data else None for k in keys]

    def set_many(self, pairs: list[tuple[str, bytes]]) -> None:
        with self._lock:
            self._data.update(pairs)

    def delete_many(self, keys: list[str]) -> None:
        with self._lock:
            for key in keys:
                self._data.pop(key, None)

    def close(self) -> None:
        """A guest dropped its handle; the data stays with the workload."""
