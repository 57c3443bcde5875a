"""The threads that run message handlers: few while handlers are quick, more when they wait.

Messages of a process run on at most `max_threads` threads (the host's bound on messages in
flight), but starting one thread per message in flight made every message a GIL hand-over between
dozens of threads: on a busy machine, each hand-over waits for the OS to schedule the other
thread, and that wait, not the handler, set the rate. So jobs queue here and only `target` threads
(about one per CPU) take them while they keep up. When the oldest queued job has waited
`stall_s` (a handler waiting on NATS, a slow or spinning one), `nudge` adds a thread, up to
`max_threads`: a handler that blocks or spins delays the others by about `stall_s` per extra
thread, never until it ends. Jobs run in arrival order.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

Job = Callable[[], None]


class HandlerThreads:
    def __init__(self, max_threads: int, target: int, stall_s: float = 0.002) -> None:
        self.max_threads = max(1, max_threads)
        self.target = max(1, min(target, self.max_threads))
        self.stall_s = stall_s
        self._jobs: collections.deque[tuple[float, Job]] = collections.deque()
        self._cond = threading.Condition(threading.Lock())
        self._threads = 0
        self._idle = 0
        self._woken = 0
        """Idle threads notified but not yet awake (so one job does not wake two)."""
        self._closed = False

    def submit(self, job: Job) -> None:
        with self._cond:
            self._jobs.append((time.monotonic(), job))
            if self._threads - self._idle + self._woken < self.target:
                self._add_one()

    def backlog(self) -> int:
        return len(self._jobs)

    def nudge(self) -> bool:
        """Adds a thread when the oldest job has waited `stall_s` (called periodically while
        jobs wait). True while jobs are still waiting."""
        with self._cond:
            if not self._jobs:
                return False
            if time.monotonic() - self._jobs[0][0] >= self.stall_s:
                self._add_one()
            return True

    def _add_one(self) -> None:
        """Wakes an idle thread, else starts one (under the lock)."""
        if self._idle > self._woken:
            self._woken += 1
            self._cond.notify()
        elif self._threads < self.max_threads:
            self._threads += 1
            threading.Thread(target=self._run, name="messaging", daemon=True).start()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._jobs and not self._closed:
                    self._idle += 1
                    self._cond.wait()
                    self._idle -= 1
                    self._woken = max(0, self._woken - 1)
                if not self._jobs:  # closed
                    self._threads -= 1
                    return
                _, job = self._jobs.popleft()
            try:
                job()
            except BaseException:  # a job handles its own errors; never lose the thread
                log.exception("message handler job failed")

    def close(self) -> None:
        """Drops the jobs not started; threads end once idle."""
        with self._cond:
            self._closed = True
            self._jobs.clear()
            self._cond.notify_all()
