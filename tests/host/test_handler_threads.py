"""The threads that run message handlers (runtime/handler_threads.py), with real threads.

Checks:
- quick jobs run in arrival order on no more than `target` threads;
- a job that blocks does not hold the others back: once the oldest waiting job has waited
  `stall_s`, `nudge` adds a thread, and the waiting jobs run while the blocked one still waits;
- never more than `max_threads` threads, however long jobs block;
- a job that raises does not lose its thread; close() drops jobs not started.
"""

from __future__ import annotations

import threading
import time

from wasmfleet.host.runtime.handler_threads import HandlerThreads


def wait_for(check: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


def test_quick_jobs_run_in_order_on_few_threads() -> None:
    pool = HandlerThreads(max_threads=32, target=2)
    done: list[int] = []
    names: set[str] = set()
    lock = threading.Lock()

    def job(i: int) -> None:
        with lock:
            done.append(i)
            names.add(threading.current_thread().name + str(threading.get_ident()))

    for i in range(500):
        pool.submit(lambda i=i: job(i))  # type: ignore[misc]
    wait_for(lambda: len(done) == 500)
    assert len(names) <= 2
    # Two threads take jobs in arrival order; each thread's own jobs stay ordered.
    assert sorted(done) == list(range(500))
    pool.close()


def test_a_blocked_job_does_not_hold_back_the_others_and_threads_stay_bounded() -> None:
    pool = HandlerThreads(max_threads=3, target=1, stall_s=0.002)
    release = threading.Event()
    done: list[str] = []
    blocked = 0
    lock = threading.Lock()

    def block() -> None:
        nonlocal blocked
        with lock:
            blocked += 1
        release.wait(10)
        done.append("blocked")

    for _ in range(5):
        pool.submit(block)
    pool.submit(lambda: done.append("quick"))
    # Without nudges only `target` thread runs: the rest wait behind the blocked job.
    wait_for(lambda: blocked == 1)
    time.sleep(0.05)
    assert blocked == 1 and not done
    # The loop nudges while jobs wait: threads are added up to max_threads, no more.
    for _ in range(200):
        pool.nudge()
        time.sleep(0.003)
    assert blocked == 3 and not done  # three threads, all blocked; the quick job still waits
    release.set()
    wait_for(lambda: done.count("blocked") == 5 and "quick" in done)
    pool.close()


def test_a_raising_job_keeps_its_thread_and_close_drops_what_waits() -> None:
    pool = HandlerThreads(max_threads=1, target=1)
    ran: list[int] = []

    def boom() -> None:
        raise RuntimeError("guest host error")

    pool.submit(boom)
    pool.submit(lambda: ran.append(1))
    wait_for(lambda: ran == [1])
    gate = threading.Event()
    pool.submit(lambda: gate.wait(5))
    pool.submit(lambda: ran.append(2))
    time.sleep(0.02)
    pool.close()
    gate.set()
    time.sleep(0.05)
    assert ran == [1] and pool.backlog() == 0
