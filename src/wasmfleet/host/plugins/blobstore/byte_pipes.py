"""Bytes handed from one thread to another through a bounded buffer.

A NATS object body moves between the guest's thread and nats-py's event loop (or its executor
threads) through a `BytePipe`: the producer waits while `capacity` bytes are buffered, so a 100 MB
object never sits in memory whole. Either side may give up: the producer with `finish(error)`,
the consumer with `cancel()` (the guest dropped its stream before the end).
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable


class PipeFailed(Exception):
    """The producer finished with an error, or the consumer cancelled."""


class BytePipe:
    CAPACITY = 4 << 20

    def __init__(self, capacity: int = CAPACITY) -> None:
        self.capacity = capacity
        self.cond = threading.Condition()
        self._chunks: collections.deque[bytes] = collections.deque()
        self._offset = 0
        self.buffered = 0
        self.eof = False
        self.error: str | None = None
        self.cancelled = False
        self.on_room: Callable[[], None] | None = None
        """Called (from the consumer's thread) when room appears while the producer waits for it."""
        self._producer_waiting = False

    # ---- producer ----------------------------------------------------------------------------

    def put(self, data: bytes) -> None:
        """Adds bytes (never waits: callers check `has_room` first). Dropped once cancelled."""
        if not data:
            return
        with self.cond:
            if self.cancelled:
                return
            self._chunks.append(data)
            self.buffered += len(data)
            self.cond.notify_all()

    def has_room(self) -> bool:
        """Whether the producer may put more now (always, once the consumer has gone)."""
        with self.cond:
            room = self.buffered < self.capacity or self.cancelled
            self._producer_waiting = not room
            return room

    def finish(self, error: str | None = None) -> None:
        with self.cond:
            if not self.eof:
                self.eof = True
                self.error = error
            self.cond.notify_all()

    # ---- consumer ----------------------------------------------------------------------------

    def has_data(self) -> bool:
        return bool(self._chunks) or self.eof or self.cancelled

    def take(self, n: int) -> bytes | None:
        """Up to n bytes; b"" when none yet; None at the end. Raises PipeFailed."""
        with self.cond:
            if self.cancelled:
                raise PipeFailed("cancelled")
            if not self._chunks:
                if self.eof and self.error is not None:
                    raise PipeFailed(self.error)
                return None if self.eof else b""
            first, off = self._chunks[0], self._offset
            if len(first) - off <= n:
                self._chunks.popleft()
                self._offset = 0
                data = first[off:] if off else first
            else:
                data = first[off:off + n]
                self._offset = off + n
            self.buffered -= len(data)
            wake = self._producer_waiting and self.buffered < self.capacity
            if wake:
                self._producer_waiting = False
            self.cond.notify_all()
        if wake and self.on_room is not None:
            self.on_room()
        return data

    def cancel(self) -> None:
        """The consumer is gone: drop what is buffered, release a waiting producer."""
        with self.cond:
            self.cancelled = True
            self._chunks.clear()
            self.buffered = 0
            self.cond.notify_all()
        if self.on_room is not None:
            self.on_room()
