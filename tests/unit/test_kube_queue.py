"""Work queue and controller runner (no API server needed).

- A key added many times is processed once; an add during processing is delivered after done().
- No two workers ever reconcile the same key at once; concurrency is bounded.
- Failed keys come back after exponential backoff; success resets it; add_after keeps the sooner timer.
- PermanentError is not retried; a returned delay requeues the key.
"""

from __future__ import annotations

import asyncio
import contextlib

from wasmfleet.kube import queueing, running


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


async def test_rate_limited_requeue_and_forget() -> None:
    q = queueing.WorkQueue(queueing.Backoff(base_s=0.01, max_s=1.0))
    assert q.add_rate_limited("k") == 0.01
    assert q.add_rate_limited("k") == 0.02
    assert await asyncio.wait_for(q.get(), 1) == "k"
    q.forget("k")
    assert q.failures("k") == 0


async def test_add_after_keeps_the_sooner_timer() -> None:
    q = queueing.WorkQueue()
    q.add_after("k", 5.0)
    q.add_after("k", 0.01)
    assert await asyncio.wait_for(q.get(), 1) == "k"


async def test_controller_bounds_concurrency_and_never_overlaps_a_key() -> None:
    running_now: set[str] = set()
    peak = 0
    calls: list[str] = []

    async def reconcile(key: str) -> float | None:
        nonlocal peak
        assert key not in running_now
        running_now.add(key)
        peak = max(peak, len(running_now))
        calls.append(key)
        await asyncio.sleep(0.01)
        running_now.discard(key)
        return None

    ctl = running.Controller("t", reconcile, concurrency=3)
    task = asyncio.create_task(ctl.run())
    for i in range(10):
        ctl.queue.add(f"k{i % 5}")
    await asyncio.sleep(0.2)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert peak <= 3
    assert sorted(set(calls)) == [f"k{i}" for i in range(5)]


async def test_errors_retry_permanent_errors_do_not() -> None:
    attempts: dict[str, int] = {"flaky": 0, "bad": 0, "later": 0}
    results: list[tuple[str, str]] = []

    async def reconcile(key: str) -> float | None:
        attempts[key] += 1
        if key == "flaky" and attempts[key] < 3:
            raise RuntimeError("transient")
        if key == "bad":
            raise running.PermanentError("spec is wrong")
        if key == "later" and attempts[key] == 1:
            return 0.02
        return None

    ctl = running.Controller(
        "t",
        reconcile,
        queue=queueing.WorkQueue(queueing.Backoff(base_s=0.01)),
        observe=lambda _n, result, _s: results.append(("x", result)),
    )
    task = asyncio.create_task(ctl.run())
    for key in attempts:
        ctl.queue.add(key)
    await asyncio.sleep(0.3)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert attempts == {"flaky": 3, "bad": 1, "later": 2}
    assert {r for _, r in results} == {"success", "error", "permanent", "requeue"}
