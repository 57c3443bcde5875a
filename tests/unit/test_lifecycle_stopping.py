"""`lifecycle.stopping.bounded` and `stopping.run` (the latter in a real subprocess: it takes over signals).

Checks:
- bounded returns True for work that finishes, False (logged, never raised) for work that fails or
  outlives its bound;
- work that swallows its cancellation is left behind after the bound plus CANCEL_GRACE_S instead of
  holding the caller (asyncio.wait_for on 3.11 would wait for it forever);
- cancelling the caller cancels the work and propagates;
- a process whose main returned but which still has a busy (non-daemon) thread exits at once, naming it;
- a process run by stopping.run whose main ignores SIGTERM and whose leftover task swallows
  cancellation still exits: the leftover is named in the log and the watchdog ends the process at its
  bound with every thread's stack; a second SIGTERM ends it at once.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from wasmfleet.lifecycle import stopping


async def stubborn(release: asyncio.Event) -> None:
    """Ignores cancellation until released (as some nats-py calls do)."""
    while not release.is_set():
        try:
            await release.wait()
        except asyncio.CancelledError:
            continue


async def test_bounded_reports_completion_failure_and_timeout(caplog: pytest.LogCaptureFixture) -> None:
    assert await stopping.bounded(asyncio.sleep(0), 1, "quick") is True

    async def fails() -> None:
        raise RuntimeError("boom")

    assert await stopping.bounded(fails(), 1, "failing step") is False
    assert "failing step failed: boom" in caplog.text
    assert await stopping.bounded(asyncio.sleep(10), 0.05, "slow step") is False
    assert "slow step did not finish within 0.05 s; cancelled" in caplog.text


async def test_bounded_leaves_work_that_swallows_its_cancellation(caplog: pytest.LogCaptureFixture) -> None:
    release = asyncio.Event()
    task = asyncio.ensure_future(stubborn(release))
    loop = asyncio.get_running_loop()
    began = loop.time()
    assert await stopping.bounded(task, 0.1, "stubborn step") is False
    assert loop.time() - began < 0.1 + stopping.CANCEL_GRACE_S + 0.3
    assert "ignored its cancellation; left behind: task" in caplog.text and "stubborn" in caplog.text
    assert not task.done()
    release.set()
    await task


async def test_cancelling_the_caller_cancels_the_work() -> None:
    work = asyncio.ensure_future(asyncio.sleep(10))
    caller = asyncio.ensure_future(stopping.bounded(work, 10, "step"))
    await asyncio.sleep(0.01)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    await asyncio.sleep(0)
    assert work.cancelled()


PROGRAM = """
import asyncio, logging, sys, threading, time
from wasmfleet.lifecycle import stopping
logging.basicConfig(level=logging.INFO, format="%(message)s")

async def stubborn():
    while True:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            pass

async def main(stop):
    asyncio.get_running_loop().create_task(stubborn(), name="stubborn")
    if sys.argv[1] == "busy-thread":
        threading.Thread(target=time.sleep, args=(3600,), name="compiling").start()
    print("ready", flush=True)
    await stop.wait()
    if sys.argv[1] == "hang":
        await asyncio.sleep(3600)   # a stop that never ends by itself

stopping.run(main, stop_within_s=float(sys.argv[2]))
"""


def _start(tmp_path: Path, mode: str, bound_s: float) -> subprocess.Popen[str]:
    script = tmp_path / "program.py"
    script.write_text(PROGRAM)
    proc = subprocess.Popen([sys.executable, str(script), mode, str(bound_s)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ})
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    return proc


def _finish(proc: subprocess.Popen[str], timeout_s: float) -> tuple[int, str]:
    try:
        _, err = proc.communicate(timeout=timeout_s)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return proc.returncode, err


def test_run_names_a_task_that_ignores_cancellation_and_exits(tmp_path: Path) -> None:
    proc = _start(tmp_path, "return", 30)
    began = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    code, err = _finish(proc, 15)
    assert code == 0, err
    assert time.monotonic() - began < stopping.EXIT_CLEANUP_S * 3 + 2
    assert "SIGTERM: stopping" in err
    assert "ignored its cancellation at exit, left behind: task 'stubborn'" in err


def test_run_watchdog_ends_a_stop_that_hangs(tmp_path: Path) -> None:
    proc = _start(tmp_path, "hang", 1.5)
    began = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    code, err = _finish(proc, 15)
    assert code == 1, err
    assert 1.4 < time.monotonic() - began < 5
    assert "stop did not finish within 1.5 s; exiting" in err
    assert "thread 0x" in err and "in run_until_complete" in err  # faulthandler: where it hung


def test_run_second_signal_exits_at_once(tmp_path: Path) -> None:
    proc = _start(tmp_path, "hang", 60)
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    began = time.monotonic()
    proc.send_signal(signal.SIGINT)
    code, err = _finish(proc, 10)
    assert code == 128 + signal.SIGINT, err
    assert time.monotonic() - began < 2
    assert "SIGINT again: exiting now" in err


def test_run_does_not_wait_for_busy_threads_at_exit(tmp_path: Path) -> None:
    proc = _start(tmp_path, "busy-thread", 60)
    began = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    code, err = _finish(proc, 15)
    assert code == 0, err
    assert time.monotonic() - began < stopping.EXIT_CLEANUP_S * 3 + 2
    assert "exiting with 1 thread(s) still busy: compiling" in err
