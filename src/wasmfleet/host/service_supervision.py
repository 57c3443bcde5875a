"""Supervision of a workload's service: its wasi:cli/run, run again after a failure, with backoff.

    supervisor = ServiceSupervisor(workload_id, command, RestartPolicy.for_service(max_restarts))
    supervisor.start()                      # first run begins at once, on a thread of its own
    supervisor.status()                     # messages.ServiceStatus (WorkloadStatus.service)
    await supervisor.stop()                 # cancel, bounded wait, then abandoned

Each run is `runtime.commands.Command.run` (the runner of `wasmfleet run`: same engine, grants and
WASI) on a dedicated daemon thread, never the event loop's default executor: a service runs for
as long as the workload does, and an abandoned one must not hold back the process's exit.

How a run ends decides what follows (upstream: "restarted on error up to maxRestarts"):
- exit code 0: `completed`, not restarted;
- an error exit or a trap: `restarting`, then a new run after a backoff, unless maxRestarts
  restarts were made already: then `failed`, for good (until the workload is started anew);
- cancelled by `stop`: `stopping`, not restarted.

The backoff doubles from FIRST_BACKOFF_S to MAX_BACKOFF_S (see there why) and starts over after a
run that lasted STABLE_RUN_S: one crash a day is not a crash loop. The restart count itself is
never reset, so maxRestarts bounds the restarts of one start of the workload, as upstream's does.

Cancellation is the closest WASI 0.2 has to SIGTERM (it has no signals): `Cancel` makes the guest
trap at its next epoch check (about 100 ms of computing) or when it next waits in a host call
(within a second). A guest stuck where neither reaches it is abandoned after the bound, and said so
in the host log; its thread is a daemon and ends with the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from wasmfleet.bus import messages
from wasmfleet.host.plugin_api import guestlogs
from wasmfleet.host.runtime import commands
from wasmfleet.host.wasi import io

log = logging.getLogger(__name__)
State = messages.ServiceState

SERVICE_NAME = "service"
"""The service's name in the workload's log and status (the manifest gives it none)."""

DEFAULT_MAX_RESTARTS = 10
"""maxRestarts when the workload sets none (<= 0): with the backoff below, about two and a half
minutes of retrying, long enough for a dependency that is still starting (a database, another
workload's endpoint) to come up, short enough that a service broken for good says so soon."""

MAX_RESTARTS_LIMIT = 2**31 - 1
"""The largest maxRestarts honoured (the wire allows a uint64; ServiceStatus.max_restarts is an
int32): at one restart per 30 s, longer than anyone waits."""

FIRST_BACKOFF_S = 0.5
"""Delay before the first restart. Half a second: a service failing at once because of a race at
startup is retried almost at once, while a guest that fails instantly still costs at most two
runs a second."""

MAX_BACKOFF_S = 30.0
"""Longest delay between restarts (the operator's start backoff has the same cap): a long outage
is still retried twice a minute, without a tight loop of compilations and log lines."""

STABLE_RUN_S = 60.0
"""A run that lasted this long resets the backoff to FIRST_BACKOFF_S."""

STOP_GRACE_S = 5.0
"""How long `stop` waits for a cancelled run to end before abandoning it: cancellation reaches a
computing guest within ~100 ms and a waiting one within ~1 s, so 5 s leaves room for a loaded
machine; past it the guest is stuck somewhere cancellation cannot reach."""

LINE_MAX_BYTES = 16 << 10
"""Output without a newline is cut into lines of this size: a long-running guest printing without
newlines must not grow the host's memory (a log line of 16 KiB is already more than anyone reads)."""

ERROR_CHARS = 300
"""A trap message longer than this is cut (it goes into a status condition and a Kubernetes
object): the first line of a wasmtime trap says what happened, the backtrace after it is noise there."""


@dataclass(frozen=True)
class RestartPolicy:
    max_restarts: int = DEFAULT_MAX_RESTARTS
    first_backoff_s: float = FIRST_BACKOFF_S
    max_backoff_s: float = MAX_BACKOFF_S
    stable_run_s: float = STABLE_RUN_S

    @classmethod
    def for_service(cls, max_restarts: int) -> RestartPolicy:
        """The policy for a workload's maxRestarts (<= 0 means unset on the wire: the default; a
        uint64 beyond MAX_RESTARTS_LIMIT is that limit)."""
        return cls(max_restarts=min(max_restarts, MAX_RESTARTS_LIMIT) if max_restarts > 0 else DEFAULT_MAX_RESTARTS)

    def backoff(self, failures_in_a_row: int) -> float:
        return float(min(self.max_backoff_s, self.first_backoff_s * 2 ** max(0, failures_in_a_row - 1)))


def describe_failure(outcome: commands.Outcome) -> str:
    """One line for a failed run: "exit code N" or "trap: <reason>" (cut to ERROR_CHARS)."""
    if outcome.trap is not None:
        text = "trap: " + " ".join(outcome.trap.split())
        return text if len(text) <= ERROR_CHARS else text[: ERROR_CHARS - 3] + "..."
    return f"exit code {outcome.exit_code}"


_guest_log = logging.getLogger("wasmfleet.guest")  # where components' output goes too (host/wasi/cli.py)


class LineOutput(io.OutputStream):
    """A service's stdout or stderr: complete lines to the host log (prefixed with
    `<workloadId>/service`) and to the workload's log. A guest's flush is not a line end (wasi-libc
    flushes after each write, and printf("...\n") writes the text and its newline separately), so
    only a newline or the end of the stream ends a line."""

    def __init__(self, log_name: str, stream: str, sink: guestlogs.GuestLog | None) -> None:
        self.log_name, self.stream, self.sink = log_name, stream, sink
        self.level = logging.WARNING if stream == "stderr" else logging.INFO
        self.pending = b""

    def write(self, data: bytes) -> None:
        self.pending += data
        if b"\n" in self.pending:
            *lines, self.pending = self.pending.split(b"\n")
            for line in lines:
                self._emit(line)
        while len(self.pending) >= LINE_MAX_BYTES:  # a guest that never writes a newline costs no memory
            self._emit(self.pending[:LINE_MAX_BYTES])
            self.pending = self.pending[LINE_MAX_BYTES:]

    def close(self) -> None:
        if self.pending:
            self._emit(self.pending)
            self.pending = b""

    def _emit(self, line: bytes) -> None:
        text = line.decode("utf-8", "replace")
        _guest_log.log(self.level, "%s: %s", self.log_name, text)
        if self.sink is not None:
            self.sink.write(self.stream, text)


def _stdio(log_name: str, guest_log: guestlogs.GuestLog | None) -> commands.CommandStdio:
    """Empty stdin; stdout and stderr line by line into the host log and the workload's log (what
    `wasmfleet logs` shows), as for components."""
    return commands.CommandStdio(
        stdin=io.InputStream,
        stdout=lambda: LineOutput(log_name, "stdout", guest_log),
        stderr=lambda: LineOutput(log_name, "stderr", guest_log),
    )


class ServiceSupervisor:
    """Runs one workload's service and keeps its status (see the module docstring)."""

    def __init__(
        self, workload_id: str, command: commands.Command, policy: RestartPolicy, *,
        guest_log: guestlogs.GuestLog | None = None, on_change: Callable[[], None] | None = None,
        on_restart: Callable[[], None] | None = None,
    ) -> None:
        """`command`: the service, compiled and linked (its spec carries the grants). `on_change`
        is called on the event loop whenever the state changes, `on_restart` at each restart."""
        self.workload_id = workload_id
        self.policy = policy
        self._command = command
        self._guest_log = guest_log
        self._on_change = on_change
        self._on_restart = on_restart
        self._stdio = _stdio(f"{workload_id}/{command.spec.name}", guest_log)
        self.state = State.RUNNING
        self.restart_count = 0
        self.last_exit_code: int | None = None
        self.last_error = ""
        self.last_exit_time: datetime | None = None
        self._backoff_s = 0.0
        self._task: asyncio.Task[None] | None = None
        self._thread: threading.Thread | None = None
        self._cancel: commands.Cancel | None = None
        self._stopping = False
        self._abandoned = False
        self._wake = asyncio.Event()

    # ---- queries -----------------------------------------------------------------------------

    @property
    def down(self) -> bool:
        """Not running as it should: between a failure and the next run, or failed for good."""
        return self.state in (State.RESTARTING, State.FAILED)

    def status(self) -> messages.ServiceStatus:
        return messages.ServiceStatus(
            state=self.state.value, restart_count=self.restart_count, max_restarts=self.policy.max_restarts,
            last_exit_code=self.last_exit_code, last_error=self.last_error, last_exit_time=self.last_exit_time,
            message=self.message(),
        )

    def message(self) -> str:
        last = f"; last failure: {self.last_error}" if self.last_error else ""
        restarts = f"restarted {self.restart_count} time{'' if self.restart_count == 1 else 's'}"
        if self.state is State.RUNNING:
            return f"running ({restarts}{last})" if self.restart_count else "running"
        if self.state is State.RESTARTING:
            # The backoff, not the time left: the same status reads the same each time it is asked
            # (the operator writes it into the Workload only when it changed).
            return (f"{self.last_error}; restart {self.restart_count + 1} of {self.policy.max_restarts} "
                    f"after a {self._backoff_s:g}s backoff")
        if self.state is State.FAILED:
            return (f"{self.last_error}; not restarted: maxRestarts ({self.policy.max_restarts}) reached "
                    f"({restarts})")
        if self.state is State.COMPLETED:
            return f"exited with code 0, not restarted ({restarts}{last})" if self.restart_count else \
                "exited with code 0, not restarted"
        return "stopping"

    # ---- running -----------------------------------------------------------------------------

    def start(self) -> None:
        """Begins the first run (call on the event loop)."""
        if self._task is None:
            self._task = asyncio.create_task(self._supervise(), name=f"service {self.workload_id}")

    async def _supervise(self) -> None:
        failures_in_a_row = 0
        try:
            while not self._stopping:
                began = time.monotonic()
                self._set(State.RUNNING)
                outcome = await self._run_once()
                self.last_exit_code = outcome.exit_code
                self.last_exit_time = datetime.now(UTC)
                if self._stopping or outcome.cancelled:
                    break
                if outcome.exit_code == 0 and outcome.trap is None:
                    log.info("service of workload %s exited with code 0: completed", self.workload_id)
                    self._set(State.COMPLETED)
                    return
                self.last_error = describe_failure(outcome)
                failures_in_a_row = 1 if time.monotonic() - began >= self.policy.stable_run_s else failures_in_a_row + 1
                if self.restart_count >= self.policy.max_restarts:
                    log.warning("service of workload %s failed (%s) after %d restarts: maxRestarts reached, "
                                "not restarted", self.workload_id, self.last_error, self.restart_count)
                    self._set(State.FAILED)
                    return
                delay = self._backoff_s = self.policy.backoff(failures_in_a_row)
                log.warning("service of workload %s failed (%s); restart %d of %d in %.1fs", self.workload_id,
                            self.last_error, self.restart_count + 1, self.policy.max_restarts, delay)
                self._set(State.RESTARTING)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay)  # stop() wakes it early
                if self._stopping:
                    break
                self.restart_count += 1
                if self._on_restart is not None:
                    self._on_restart()
            self._set(State.STOPPING)
        finally:
            thread = self._thread
            if thread is not None and thread.is_alive() and not self._abandoned:
                # It delivered its outcome and is returning: a moment, never the loop blocked.
                await asyncio.to_thread(thread.join, 1.0)
            if thread is None or not thread.is_alive():  # an abandoned run may still use them
                self._command.close()
                if self._guest_log is not None:
                    self._guest_log.close()

    async def _run_once(self) -> commands.Outcome:
        loop = asyncio.get_running_loop()
        ended: asyncio.Future[commands.Outcome] = loop.create_future()
        cancel = commands.Cancel()
        command, stdio, guest_log = self._command, self._stdio, self._guest_log

        def deliver(outcome: commands.Outcome) -> None:
            if not ended.done():  # an abandoned run's future was cancelled with the task
                ended.set_result(outcome)

        def run() -> None:
            try:
                outcome = command.run([SERVICE_NAME], stdio, cancel, guest_log=guest_log)
            except Exception as exc:  # the runtime failed, not the guest: a failure all the same
                log.exception("service of workload %s: the run failed in the host", self.workload_id)
                outcome = commands.Outcome(commands.TRAP_EXIT_CODE, f"host error: {type(exc).__name__}: {exc}")
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits any more
                loop.call_soon_threadsafe(deliver, outcome)

        self._cancel = cancel
        self._thread = threading.Thread(target=run, name=f"service {self.workload_id}", daemon=True)
        self._thread.start()
        return await ended

    def _set(self, state: State) -> None:
        if state is self.state:
            return
        self.state = state
        if self._on_change is not None:
            try:
                self._on_change()
            except Exception:
                log.exception("service state listener failed")

    # ---- stop --------------------------------------------------------------------------------

    async def stop(self, grace_s: float = STOP_GRACE_S) -> bool:
        """Cancels the run in progress (or the pending restart) and waits at most `grace_s` for it to
        end; True when it did, False when it was abandoned (logged)."""
        task = self._task
        if task is None:
            return True
        self._stopping = True
        self._wake.set()
        if self._cancel is not None:
            self._cancel.cancel()
        if task.done():
            return True
        if self.state in (State.RUNNING, State.RESTARTING):
            self._set(State.STOPPING)
        done, _ = await asyncio.wait({task}, timeout=grace_s)
        if done:
            return True
        log.warning("service of workload %s did not end within %.1fs of its cancellation: abandoned (its "
                    "thread is left to the process)", self.workload_id, grace_s)
        self._abandoned = True
        task.cancel()
        await asyncio.wait({task}, timeout=1.0)
        return False
