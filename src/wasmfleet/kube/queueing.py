"""A de-duplicating work queue of object keys, as controller-runtime's workqueue.

Guarantees: a key is queued at most once however often it is added; a key is never handed to two
workers at the same time (an add while it is being processed is remembered and delivered after
`done`); failed keys come back after an exponential, per-key backoff that `forget` resets.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol


class Timer(Protocol):
    def when(self) -> float: ...

    def cancel(self) -> None: ...


class Clock(Protocol):
    """What the queue needs of time: the running event loop by default; tests pass one they advance
    by hand, so backoff and delayed adds are checked without sleeping or reading the wall clock."""

    def time(self) -> float: ...

    def call_later(self, delay: float, callback: Callable[..., object], *args: Any) -> Timer: ...


@dataclass(frozen=True)
class Backoff:
    """Per-key exponential backoff for failed reconciles.

    base_s: first retry delay; small so a transient conflict is retried almost at once.
    max_s: cap, so a long-broken object is still retried every so often without hot-looping.
    """

    base_s: float = 0.05
    max_s: float = 30.0

    def delay(self, failures: int) -> float:
        return float(min(self.max_s, self.base_s * (2 ** max(0, failures - 1))))


class WorkQueue:
    def __init__(self, backoff: Backoff | None = None, *, clock: Clock | None = None) -> None:
        self._backoff = backoff or Backoff()
        self._clock = clock
        self._queue: deque[str] = deque()
        self._dirty: set[str] = set()  # queued, or re-added while processing
        self._processing: set[str] = set()
        self._failures: dict[str, int] = {}
        self._timers: dict[str, Timer] = {}
        # Set whenever a key is queued; workers that find the queue empty wait on it again.
        self._wakeup = asyncio.Event()
        self._closed = False

    def __len__(self) -> int:
        return len(self._queue)

    def add(self, key: str) -> None:
        if self._closed or key in self._dirty:
            return
        self._dirty.add(key)
        if key in self._processing:
            return  # delivered again by done()
        self._queue.append(key)
        self._notify()

    def add_after(self, key: str, delay_s: float) -> None:
        """Add `key` after `delay_s`; an earlier pending timer for the key wins (the sooner retry)."""
        if delay_s <= 0:
            self.add(key)
            return
        clock: Clock = self._clock or asyncio.get_running_loop()
        existing = self._timers.get(key)
        if existing is not None:
            if existing.when() <= clock.time() + delay_s:
                return
            existing.cancel()
        self._timers[key] = clock.call_later(delay_s, self._fire, key)

    def _fire(self, key: str) -> None:
        self._timers.pop(key, None)
        self.add(key)

    def add_rate_limited(self, key: str) -> float:
        """Requeue a failed key after its backoff; returns the delay chosen."""
        failures = self._failures.get(key, 0) + 1
        self._failures[key] = failures
        delay = self._backoff.delay(failures)
        self.add_after(key, delay)
        return delay

    def forget(self, key: str) -> None:
        """The key succeeded: its next failure starts again from the base delay."""
        self._failures.pop(key, None)

    def failures(self, key: str) -> int:
        return self._failures.get(key, 0)

    def _notify(self) -> None:
        self._wakeup.set()

    async def get(self) -> str | None:
        """The next key to process (marked as processing), or None once the queue is shut down."""
        while not self._queue:
            if self._closed:
                return None
            self._wakeup.clear()
            await self._wakeup.wait()
        key = self._queue.popleft()
        self._dirty.discard(key)
        self._processing.add(key)
        return key

    def done(self, key: str) -> None:
        self._processing.discard(key)
        if key in self._dirty:
            self._queue.append(key)
            self._notify()

    async def shutdown(self) -> None:
        self._closed = True
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        self._queue.clear()
        self._wakeup.set()
