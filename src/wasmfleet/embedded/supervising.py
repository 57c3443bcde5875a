"""Runs child processes in order, waits until each is ready, restarts crashed ones, stops them in reverse.

A `Child` is a command line, a log file and an async readiness probe. The supervisor:
- starts children one by one (later ones depend on earlier ones: NATS, then the API server, ...) and
  reports progress through a callback while waiting for each probe;
- watches every child; one that exits while the fleet runs is restarted with exponential backoff
  (reset after it stayed up for a while), and the restart is reported;
- on stop, terminates children in reverse start order, a batch together (SIGTERM to the child, SIGKILL to
  its process group after a grace period or once it exited, for whatever it forked), so hosts drain before
  the API server and NATS go away.

Children run in their own session (Ctrl-C in the terminal reaches only the supervisor, which then stops
them in order) and, on Linux, get SIGTERM if the supervisor dies abruptly (even by SIGKILL), so no orphan
keeps ports busy; hosts in turn take their worker processes with them (lifecycle.orphans).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import signal
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from wasmfleet.lifecycle import orphans

Probe = Callable[[], Awaitable[bool]]
Report = Callable[[str], None]


class StartError(RuntimeError):
    """A child did not become ready; the message names it and points at its log."""


@dataclass
class Child:
    name: str
    argv: Sequence[str]
    log_path: Path
    ready: Probe | None = None
    """Returns True once the child serves; None means 'running is ready'."""
    describe: str = ""
    """One line for the summary: where it listens, what it is for."""
    env: dict[str, str] = field(default_factory=dict)
    ready_timeout_s: float = 60.0
    stop_early: bool = False
    """Stopped before the others (whatever its start position): the operator, so that hosts leaving
    during a shutdown do not make it move every workload onto the last host still running."""
    batch: str = ""
    """Consecutive children with the same non-empty batch start together (hosts do not depend on each
    other, and each pays the interpreter start-up: in parallel they are ready in the time of one)."""
    stop_grace_s: float | None = None
    """How long a stop waits for it after SIGTERM before SIGKILL (None: the supervisor's default). A host
    gets its own stop bound, so it is never killed while it may still be draining."""
    min_restart_delay_s: float = 0.0
    """A restart waits at least this long (whatever the backoff): a host that comes back under the same
    host ID must stay away until the operator judged it dead, or its lost workloads are never moved."""
    process: asyncio.subprocess.Process | None = None
    restarts: int = 0
    started_at: float = 0.0


class Supervisor:
    def __init__(
        self,
        children: Sequence[Child],
        *,
        report: Report,
        state_path: Path | None = None,
        stop_grace_s: float = 10.0,
        max_backoff_s: float = 10.0,
        healthy_after_s: float = 30.0,
    ) -> None:
        self.children = list(children)
        self._report = report
        self._state_path = state_path
        self._stop_grace_s = stop_grace_s
        self._max_backoff_s = max_backoff_s
        self._healthy_after_s = healthy_after_s
        self._stopping = False
        self._watchers: list[asyncio.Task[None]] = []

    async def _spawn(self, child: Child) -> None:
        child.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = child.log_path.open("ab")
        try:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
            log.write(f"\n===== {stamp} starting: {' '.join(child.argv)}\n".encode())
            log.flush()
            child.process = await asyncio.create_subprocess_exec(
                *child.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                env={**os.environ, **child.env},
                # Spawned from the event loop's thread, which lives as long as the supervisor: the
                # parent-death signal is tied to the forking thread (see lifecycle.orphans).
                preexec_fn=functools.partial(orphans.new_session_dying_with, os.getpid()),
            )
        finally:
            log.close()
        child.started_at = time.monotonic()
        self._write_state()

    def _write_state(self) -> None:
        """Record child pids (for `wasmfleet` tooling and tests that need to kill one)."""
        if self._state_path is None:
            return
        state = {
            c.name: {"pid": c.process.pid if c.process else None, "restarts": c.restarts, "log": str(c.log_path)}
            for c in self.children
        }
        tmp = self._state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(self._state_path)

    async def _wait_ready(self, child: Child) -> None:
        deadline = time.monotonic() + child.ready_timeout_s
        while True:
            assert child.process is not None
            if child.process.returncode is not None:
                raise StartError(
                    f"{child.name} exited with status {child.process.returncode} while starting; "
                    f"see {child.log_path}"
                )
            if child.ready is None or await child.ready():
                return
            if time.monotonic() > deadline:
                raise StartError(
                    f"{child.name} not ready after {child.ready_timeout_s:g} s; see {child.log_path}"
                )
            await asyncio.sleep(0.1)

    async def start(self) -> None:
        """Start every child in order; raises StartError (after stopping what started) on failure."""
        total = len(self.children)
        index = {id(child): number for number, child in enumerate(self.children, 1)}
        try:
            for batch in _consecutive_batches(self.children):
                await asyncio.gather(*(self._start_one(index[id(child)], total, child) for child in batch))
        except BaseException:
            await self.stop()
            raise

    async def _start_one(self, index: int, total: int, child: Child) -> None:
        began = time.monotonic()
        self._report(f"[{index}/{total}] starting {child.name} ...")
        await self._spawn(child)
        await self._wait_ready(child)
        took = time.monotonic() - began
        self._report(f"[{index}/{total}] {child.name} ready in {took:.1f} s  {child.describe}".rstrip())
        self._watchers.append(asyncio.create_task(self._watch(child)))

    async def _watch(self, child: Child) -> None:
        backoff = 0.5
        while not self._stopping:
            assert child.process is not None
            code = await child.process.wait()
            if self._stopping:
                return
            # Workers the crashed child forked share its process group: they must not hold its ports.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(child.process.pid, signal.SIGKILL)
            up_for = time.monotonic() - child.started_at
            if up_for > self._healthy_after_s:
                backoff = 0.5
            delay = max(backoff, child.min_restart_delay_s)
            self._report(
                f"{child.name} exited with status {code} after {up_for:.1f} s; restarting in {delay:.1f} s "
                f"(log: {child.log_path})"
            )
            await asyncio.sleep(delay)
            backoff = min(self._max_backoff_s, backoff * 2)
            if self._stopping:
                return
            child.restarts += 1
            await self._spawn(child)
            try:
                await self._wait_ready(child)
            except StartError as exc:
                self._report(str(exc))
                continue
            self._report(f"{child.name} restarted (restart #{child.restarts})")

    async def stop(self) -> None:
        """Stop children in reverse order; safe to call twice."""
        self._stopping = True
        for task in self._watchers:
            task.cancel()
        if self._watchers:
            # Waited for, not awaited: awaiting a cancelled task under suppress(CancelledError) would
            # also swallow a cancellation of this stop itself.
            await asyncio.wait(self._watchers)
        self._watchers.clear()
        order = list(reversed(self.children))
        order = [c for c in order if c.stop_early] + [c for c in order if not c.stop_early]
        # A batch (the hosts) stops together, as it started: each host drains for up to its own
        # --drain-timeout, and one after the other that would add up.
        for group in _consecutive_batches(order):
            await asyncio.gather(*(self._terminate(child) for child in group))
        self._write_state()

    async def _terminate(self, child: Child) -> None:
        proc = child.process
        if proc is None or proc.returncode is not None:
            return
        self._report(f"stopping {child.name} ...")
        # SIGTERM to the child alone: it stops what it started itself (a host drains its wasm workers
        # before stopping them; SIGTERM to the whole group would kill them mid-request).
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        grace = child.stop_grace_s if child.stop_grace_s is not None else self._stop_grace_s
        try:
            await asyncio.wait_for(proc.wait(), grace)
        except TimeoutError:
            self._report(f"{child.name} did not stop within {grace:g} s; killing it")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
        # Workers the child forked share its process group: make sure none outlives it.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)


def _consecutive_batches(children: Sequence[Child]) -> list[list[Child]]:
    """Runs of consecutive children sharing a non-empty `batch`; every other child alone."""
    groups: list[list[Child]] = []
    for child in children:
        if groups and child.batch and groups[-1][0].batch == child.batch:
            groups[-1].append(child)
        else:
            groups.append([child])
    return groups
