"""wasi:cli (environment, exit, stdin/stdout/stderr, terminal-*).

A command run (`runtime.commands`, `wasmfleet run`) brings its own stdio in the store's state.
Otherwise stdin is empty; stdout and stderr go to the host's log, one record per line, prefixed with
"<workloadId>/<component>", so a guest's prints are visible without a terminal; with a guest log
(host agents keep one per workload) each line is also appended there for `wasmfleet logs`.
"""

from __future__ import annotations

import logging
from typing import Any

from wasmfleet.host.plugin_api import guestlogs, store_state
from wasmfleet.host.plugin_api.interfaces import Interface
from wasmfleet.host.wasi.io import InputStream, OutputStream

log = logging.getLogger("wasmfleet.guest")


LINE_MAX_BYTES = 16 << 10
"""Output without a newline is logged in pieces of this size (bounded memory per stream)."""


class LogOutput(OutputStream):
    """Buffers bytes and logs complete lines, and the rest when the stream is dropped.

    A flush is not a line end: wasi-libc flushes after every write, so `printf("x\n")` arrives as
    "x", flush, "\n", flush, and logging at flush made two lines of it ("x" and an empty one)."""

    def __init__(self, name: str, level: int, sink: guestlogs.GuestLog | None = None) -> None:
        self.name = name
        self.level = level
        self.sink = sink
        self.stream = "stderr" if level >= logging.WARNING else "stdout"
        self.pending = b""

    def write(self, data: bytes) -> None:
        self.pending += data
        if b"\n" in self.pending:
            *lines, self.pending = self.pending.split(b"\n")
            for line in lines:
                self._emit(line)
        while len(self.pending) >= LINE_MAX_BYTES:
            self._emit(self.pending[:LINE_MAX_BYTES])
            self.pending = self.pending[LINE_MAX_BYTES:]

    def flush(self) -> None:
        """Nothing to do: complete lines are logged as they arrive, the rest at close."""

    def _emit_rest(self) -> None:
        if self.pending:
            self._emit(self.pending)
            self.pending = b""

    def _emit(self, line: bytes) -> None:
        text = line.decode("utf-8", "replace")
        log.log(self.level, "%s: %s", self.name, text)
        if self.sink is not None:
            self.sink.write(self.stream, text)

    def close(self) -> None:
        self._emit_rest()


def _output(level: int) -> OutputStream:
    state = store_state.state()
    if state.stdio is not None:
        out: OutputStream = state.stdio.stdout() if level < logging.WARNING else state.stdio.stderr()
        return out
    return LogOutput(state.log_name, level, state.guest_log)


def _stdin() -> InputStream:
    stdio = store_state.state().stdio
    if stdio is None:
        return InputStream()
    stream: InputStream = stdio.stdin()
    return stream


def _exit(status: tuple[str, Any]) -> None:
    raise store_state.GuestExit(0 if status[0] == "ok" else 1)


def _exit_with_code(code: int) -> None:
    raise store_state.GuestExit(code)


INTERFACES = {
    "wasi:cli/environment": Interface(
        "wasi:cli/environment",
        {
            "get-environment": lambda: list(store_state.state().environment),
            "get-arguments": lambda: list(store_state.state().arguments),
            "initial-cwd": lambda: None,
        },
    ),
    "wasi:cli/exit": Interface(
        "wasi:cli/exit", {"exit": _exit, "exit-with-code": _exit_with_code}
    ),
    "wasi:cli/stdin": Interface("wasi:cli/stdin", {"get-stdin": _stdin}),
    "wasi:cli/stdout": Interface(
        "wasi:cli/stdout",
        {"get-stdout": lambda: _output(logging.INFO)},
    ),
    "wasi:cli/stderr": Interface(
        "wasi:cli/stderr",
        {"get-stderr": lambda: _output(logging.WARNING)},
    ),
    "wasi:cli/terminal-input": Interface("wasi:cli/terminal-input", {}, ("terminal-input",)),
    "wasi:cli/terminal-output": Interface("wasi:cli/terminal-output", {}, ("terminal-output",)),
    "wasi:cli/terminal-stdin": Interface(
        "wasi:cli/terminal-stdin", {"get-terminal-stdin": lambda: None}
    ),
    "wasi:cli/terminal-stdout": Interface(
        "wasi:cli/terminal-stdout", {"get-terminal-stdout": lambda: None}
    ),
    "wasi:cli/terminal-stderr": Interface(
        "wasi:cli/terminal-stderr", {"get-terminal-stderr": lambda: None}
    ),
}
