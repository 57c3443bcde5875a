"""Work queue and controller runner (no API server needed).

- A key added many times is processed once; an add during processing is delivered after done().
- No two workers ever reconcile the same key at once (even when the key is re-added while it is being
  reconciled); concurrency is bounded.
- Failed keys come back after exponential backoff, not before; success resets it; add_after keeps
  the sooner timer and drops the later one.
- PermanentError is not retried; a returned delay requeues the key once, after that delay.

Timers run on a hand-advanced clock (ManualClock), not the wall clock: the assertions say exactly
when a key comes back, and a loaded machine cannot make them flaky.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
from collections.abc import Callable
from typing import Any

from wasmfleet.kube import queueing, running


class ManualTimer:
    def __init__(self, when: float, callback: Callable[[], object]) -> None:
        self._when = when
        self.callback = callback
        self.cancelled = False

    def when(self) -> float:
        return self._when

    def cancel(self) -> None:
        self.cancelled = True


class ManualClock:
    """A queueing.Clock whose time moves only through advance(), firing the timers that came due."""

    def __init__(self) -> None:
        self.now = 0.0
        self._timers: list[tuple[float, int, ManualTimer]] = []
        self._order = itertools.count()

    def time(self) -> float:
        return self.now

    def call_later(self, delay: float, callback: Callable[..., object], *args: Any) -> ManualTimer:
        timer = ManualTimer(self.now + delay, lambda: callback(*args))
        heapq.heappush(self._timers, (timer.when(), next(self._order), timer))
        return timer

    def advance(self, seconds: float) -> None:
        self.now += seconds
        while self._timers and self._timers[0][0] <= self.now + 1e-9:
            _, _, timer = heapq.heappop(self._timers)
            if not timer.cancelled:
                timer.callback()


async def settle() -> None:
    """Let every ready task run until nothing is left to do (no time passes)."""
    for _ in range(50):
        await asyncio.sleep(0)


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def test_duplicate_adds_are_collapsed() -> None:
    q = queueing.WorkQueue()
    for _ in range(5):
        q.add("a")
    q.add("b")
    assert len(q) == 2
    assert await q.get() == "a"
    q.add("a")  # while processing: remembered, not queued twice
    assert await q.get() == "b"
    assert len(q) == 0
    q.done("a")
    assert await q.get() == "a"


def test_backoff_grows_and_caps() -> None:
    b = queueing.Backoff(base_s=0.1, max_s=1.0)
    assert [b.delay(n) for n in (1, 2, 3, 4, 5, 9)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]


async def test_rate_limited_requeue_comes_back_after_its_backoff_and_forget_resets_it() -> None:
    clock = ManualClock()
    q = queueing.WorkQueue(queueing.Backoff(base_s=1.0, max_s=60.0), clock=clock)
    assert q.add_rate_limited("k") == 1.0
    clock.advance(0.9)
    assert len(q) == 0
    clock.advance(0.1)
    assert len(q) == 1 and await q.get() == "k"
    q.done("k")
    assert q.add_rate_limited("k") == 2.0  # the second failure waits twice as long
    clock.advance(1.9)
    assert len(q) == 0
    clock.advance(0.1)
    assert await q.get() == "k"
    q.done("k")
    q.forget("k")
    assert q.failures("k") == 0
    assert q.add_rate_limited("k") == 1.0


async def test_add_after_keeps_the_sooner_timer() -> None:
    clock = ManualClock()
    q = queueing.WorkQueue(clock=clock)
    q.add_after("k", 5.0)
    q.add_after("k", 1.0)  # sooner: replaces the 5 s timer
    q.add_after("k", 3.0)  # later: ignored
    clock.advance(1.0)
    assert await q.get() == "k"
    q.done("k")
    clock.advance(10.0)
    assert len(q) == 0  # neither the 5 s nor the 3 s timer fired


async def test_controller_bounds_concurrency_and_never_overlaps_a_key() -> None:
    running_now: set[str] = set()
    overlaps: list[str] = []  # recorded here: an assert inside reconcile would be caught by the runner
    peak = 0
    calls: list[str] = []
    readded: set[str] = set()
    release = asyncio.Event()

    async def reconcile(key: str) -> float | None:
        nonlocal peak
        if key in running_now:
            overlaps.append(key)
        running_now.add(key)
        peak = max(peak, len(running_now))
        calls.append(key)
        if key not in readded:
            readded.add(key)
            ctl.queue.add(key)  # an add while processing: must wait for this reconcile to end
        await release.wait()
        running_now.discard(key)
        return None

    ctl = running.Controller("t", reconcile, concurrency=3)
    task = asyncio.create_task(ctl.run())
    for i in range(10):
        ctl.queue.add(f"k{i % 5}")
    await settle()
    assert peak == 3 and len(calls) == 3  # three at once, the others wait
    release.set()
    await settle()
    await stop(task)
    assert overlaps == []
    assert peak == 3
    assert sorted(calls) == sorted(f"k{i}" for i in range(5) for _ in range(2))  # each twice: add + re-add


async def test_errors_retry_permanent_errors_do_not() -> None:
    attempts: dict[str, int] = {"flaky": 0, "bad": 0, "later": 0, "fine": 0}
    results: list[str] = []

    async def reconcile(key: str) -> float | None:
        attempts[key] += 1
        if key == "flaky" and attempts[key] < 3:
            raise RuntimeError("transient")
        if key == "bad":
            raise running.PermanentError("spec is wrong")
        if key == "later" and attempts[key] == 1:
            return 5.0
        return None

    clock = ManualClock()
    ctl = running.Controller(
        "t",
        reconcile,
        queue=queueing.WorkQueue(queueing.Backoff(base_s=1.0), clock=clock),
        observe=lambda _n, result, _s: results.append(result),
    )
    task = asyncio.create_task(ctl.run())
    for key in attempts:
        ctl.queue.add(key)
    await settle()
    assert attempts == {"flaky": 1, "bad": 1, "later": 1, "fine": 1}
    clock.advance(1.0)  # flaky's first backoff
    await settle()
    assert attempts["flaky"] == 2
    clock.advance(1.9)  # its second backoff is 2 s: not yet
    await settle()
    assert attempts["flaky"] == 2
    clock.advance(0.1)
    await settle()
    assert attempts["flaky"] == 3
    clock.advance(2.0)  # t=5: the delay "later" asked for
    await settle()
    clock.advance(3600)  # nothing else comes back, however long we wait
    await settle()
    await stop(task)
    assert attempts == {"flaky": 3, "bad": 1, "later": 2, "fine": 1}
    assert sorted(set(results)) == ["error", "permanent", "requeue", "success"]
