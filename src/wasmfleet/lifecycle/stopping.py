"""Stops that always end.

    stopping.run(main, stop_within_s=drain + 8)    # main(stop: asyncio.Event) -> coroutine
    await stopping.bounded(nc.drain(), 2, "NATS drain")

`run` is `asyncio.run` for a long-running command whose exit must be bounded whatever state it is in.
SIGTERM and SIGINT set the `stop` event handed to `main`; from that first signal (or from `main`
returning, whichever comes first) the process has `stop_within_s` seconds left. The graceful path
uses them; a watchdog thread enforces them: when they pass it writes every thread's stack to stderr
and ends the process with `os._exit(1)`. A second signal ends it at once (exit 128 + signal).

Why a thread and not the event loop: the loop is exactly what may be stuck. A guest running on it,
a task that swallows its cancellation (asyncio.run's final `_cancel_all_tasks` then waits forever),
or a worker thread the interpreter joins at exit all keep an `asyncio.run` process alive, deaf to
further SIGTERMs (their handler only sets an event nobody looks at any more). Signals reach the
watchdog through `signal.set_wakeup_fd`, which the C-level handler writes whatever the main thread
is doing.

`bounded` awaits with a time limit that does not depend on the awaited code honouring cancellation:
on Python 3.11 `asyncio.wait_for` waits for the cancelled work to finish after its timeout, so one
nats-py call that swallows CancelledError (several do) makes the "bounded" wait unbounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import logging
import os
import select
import signal
import socket
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

log = logging.getLogger(__name__)

CANCEL_GRACE_S = 0.5
"""How long cancelled work gets to unwind before it is abandoned (cancellation is prompt when honoured)."""

EXIT_CLEANUP_S = 2.0
"""Bound of the loop's last steps after `main` returned: cancelling leftover tasks, async generators,
the default executor."""

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)

Main = Callable[[asyncio.Event], Coroutine[Any, Any, None]]


async def bounded(aw: Awaitable[object], timeout_s: float, what: str) -> bool:
    """Await `aw` for at most `timeout_s` (then cancel it, and give it CANCEL_GRACE_S to unwind).

    Returns True when it completed; a failure or a timeout is logged with `what` and returns False,
    so a shutdown step never stops the steps after it. Work that ignores its cancellation is left
    behind (named in the log) rather than waited for. The caller's own cancellation is honoured.
    """
    task = asyncio.ensure_future(aw)
    try:
        done, _ = await asyncio.wait({task}, timeout=max(0.0, timeout_s))
        if not done:
            task.cancel()
            done, _ = await asyncio.wait({task}, timeout=CANCEL_GRACE_S)
            if done:
                if not task.cancelled():
                    task.exception()  # retrieved: whatever it raised while unwinding is moot now
                log.warning("%s did not finish within %.3g s; cancelled", what, timeout_s)
            else:
                log.warning("%s did not finish within %.3g s and ignored its cancellation; left behind: %s",
                            what, timeout_s, where(task))
            return False
    except asyncio.CancelledError:
        task.cancel()
        raise
    if task.cancelled():
        log.warning("%s was cancelled", what)
        return False
    exc = task.exception()
    if exc is not None:
        log.warning("%s failed: %s", what, exc or type(exc).__name__)
        return False
    return True


def where(task: asyncio.Task[Any] | asyncio.Future[Any]) -> str:
    """Where a task is suspended (innermost frame last), for a log line."""
    if not isinstance(task, asyncio.Task):
        return repr(task)
    # Follow the chain of awaits (Task.get_stack() stops at the outermost coroutine of a suspended task).
    places = []
    coro: Any = task.get_coro()
    while coro is not None:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is not None:
            places.append(f"{frame.f_code.co_name} ({os.path.basename(frame.f_code.co_filename)}:{frame.f_lineno})")
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    return f"task {task.get_name()!r} at {' > '.join(places) or '?'}"


class Watchdog:
    """Receives stop signals on a thread and ends the process when a stop outlives its bound."""

    def __init__(self, bound_s: float, on_first_signal: Callable[[int], None]) -> None:
        self.bound_s = bound_s
        self._on_first_signal = on_first_signal
        self._receive, self._send = socket.socketpair()
        self._send.setblocking(False)
        self._deadline: float | None = None
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._watch, name="stop-watchdog", daemon=True)

    def install(self) -> None:
        """Take over SIGTERM/SIGINT (main thread only) and start watching."""
        for signum in STOP_SIGNALS:
            signal.signal(signum, _note_signal)
        signal.set_wakeup_fd(self._send.fileno(), warn_on_full_buffer=False)
        self._thread.start()

    def arm(self) -> None:
        """Start the countdown (once; later calls keep the first deadline)."""
        with self._lock:
            if self._deadline is not None:
                return
            self._deadline = time.monotonic() + self.bound_s
        with contextlib.suppress(OSError):
            self._send.send(b"\0")  # wake the watcher so it waits with the deadline

    def _watch(self) -> None:
        seen = 0
        while True:
            with self._lock:
                deadline = self._deadline
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select([self._receive], [], [], timeout)
            if not ready:
                self._expire()
                return
            for signum in self._receive.recv(64):
                if signum not in STOP_SIGNALS:
                    continue  # 0: a wake-up from arm(); other signals belong to their own handlers
                seen += 1
                if seen == 1:
                    log.info("%s: stopping (at most %.3g s)", signal.Signals(signum).name, self.bound_s)
                    self.arm()
                    self._on_first_signal(signum)
                else:
                    log.warning("%s again: exiting now", signal.Signals(signum).name)
                    _exit(128 + signum)

    def _expire(self) -> None:
        log.error("stop did not finish within %.3g s; exiting. Where every thread was:", self.bound_s)
        _flush_logs()
        with contextlib.suppress(Exception):
            faulthandler.dump_traceback(sys.stderr, all_threads=True)
        _exit(1)


def _note_signal(signum: int, frame: object) -> None:
    """Python-level handler: the work is done by the watchdog (through the wakeup fd)."""


def _flush_logs() -> None:
    for handler in logging.getLogger().handlers:
        with contextlib.suppress(Exception):
            handler.flush()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()


def _exit(code: int) -> None:
    _flush_logs()
    os._exit(code)


def run(main: Main, *, stop_within_s: float) -> None:
    """Run `main(stop)` to completion on a new event loop, with a bounded stop (see the module doc).

    For a command's process, not for tests in-process: once started, the watchdog guards the process
    until it exits, and its deadline, armed when `main` returns, also covers the interpreter's exit.
    When `main` returned but threads are still busy (they would be joined at exit), the process
    exits at once with status 0 instead of waiting for them.
    """
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    stop = asyncio.Event()

    def first_signal(_signum: int) -> None:
        with contextlib.suppress(RuntimeError):  # the loop already closed: the process is exiting
            loop.call_soon_threadsafe(stop.set)

    watchdog = Watchdog(stop_within_s, first_signal)
    watchdog.install()
    try:
        loop.run_until_complete(main(stop))
    finally:
        watchdog.arm()
        try:
            _finish(loop)
        finally:
            asyncio.set_event_loop(None)
            loop.close()
    # The interpreter would now join every non-daemon thread, e.g. an executor thread still compiling
    # a component for a start the stop cancelled. Their results have nobody to go to: leave now.
    busy = [t.name for t in threading.enumerate() if not t.daemon and t is not threading.main_thread()]
    if busy:
        log.warning("exiting with %d thread(s) still busy: %s", len(busy), ", ".join(busy))
        _exit(0)


def _finish(loop: asyncio.AbstractEventLoop) -> None:
    """asyncio.run's last steps, each bounded: leftover tasks that ignore cancellation are named in
    the log and left, instead of holding the process forever."""
    tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for task in tasks:
        task.cancel()
    if tasks:
        done, pending = loop.run_until_complete(asyncio.wait(tasks, timeout=EXIT_CLEANUP_S))
        for task in pending:
            log.warning("ignored its cancellation at exit, left behind: %s", where(task))
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                loop.call_exception_handler({
                    "message": "unhandled exception in a task cancelled at exit",
                    "exception": task.exception(),
                    "task": task,
                })
    for what, step in (("closing async generators", loop.shutdown_asyncgens()),
                       ("joining executor threads", loop.shutdown_default_executor())):
        finishing = loop.create_task(step)
        _, pending_steps = loop.run_until_complete(asyncio.wait({finishing}, timeout=EXIT_CLEANUP_S))
        if pending_steps:
            log.warning("%s did not finish within %.3g s at exit", what, EXIT_CLEANUP_S)
            finishing.cancel()
            loop.run_until_complete(asyncio.wait({finishing}, timeout=CANCEL_GRACE_S))
