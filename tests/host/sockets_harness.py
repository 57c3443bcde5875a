"""Running the sockets-py guest (tests/components/sockets-py) in process, in threads, as workloads.

A `Workload` is a private loopback directory plus network policy; `Workload.start(args)` runs the
guest's wasi:cli/run on a thread through runtime.commands (what `wasmfleet run` uses) and
collects its stdout lines, so a server and its clients can run at the same time.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from pathlib import Path
from typing import Any

from wasmfleet.host.runtime import commands, specs
from wasmfleet.host.wasi import io


class GuestRun:
    """One run of the guest on its own thread; its stdout as lines."""

    def __init__(self, command: commands.Command, args: list[str]) -> None:
        self.lines: list[str] = []
        self.stderr: list[str] = []
        self._buffer = b""
        self._cond = threading.Condition()
        self.outcome: commands.Outcome | None = None
        self.cancel = commands.Cancel()
        stdio = commands.CommandStdio(
            stdin=io.InputStream,
            stdout=lambda: io.CallbackOutput(self._out),
            stderr=lambda: io.CallbackOutput(lambda data: self.stderr.append(data.decode(errors="replace"))),
        )
        self._thread = threading.Thread(target=self._run, args=(command, args, stdio), daemon=True)
        self._thread.start()

    def _run(self, command: commands.Command, args: list[str], stdio: commands.CommandStdio) -> None:
        outcome = command.run(["sockets-py", *args], stdio, self.cancel)
        with self._cond:
            self.outcome = outcome
            self._cond.notify_all()

    def _out(self, data: bytes) -> None:
        with self._cond:
            self._buffer += data
            *complete, self._buffer = self._buffer.split(b"\n")
            self.lines += [line.decode() for line in complete]
            self._cond.notify_all()

    def wait_line(self, prefix: str, timeout: float = 30.0) -> str:
        """The first stdout line starting with `prefix` (waiting for it)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = next((line for line in self.lines if line.startswith(prefix)), None)
                if found is not None:
                    return found
                if self.outcome is not None or time.monotonic() > deadline:
                    raise AssertionError(f"no line {prefix!r}; got {self.lines} {self.stderr} {self.outcome}")
                self._cond.wait(0.1)

    def finish(self, timeout: float = 60.0) -> list[str]:
        """Waits for the run to end (it must exit 0); returns its stdout lines."""
        self._thread.join(timeout)
        assert self.outcome is not None, f"still running after {timeout} s: {self.lines}"
        assert self.outcome.exit_code == 0, (self.outcome, self.lines, self.stderr)
        return self.lines

    def stop(self) -> None:
        self.cancel.cancel()
        self._thread.join(10)


@dataclasses.dataclass
class Workload:
    """The guest as one workload: its own private loopback and LocalResources network policy."""

    wasm: Path
    settings: specs.RuntimeSettings
    loopback_dir: Path
    allowed_hosts: tuple[str, ...] = ()
    allowed_ip_name_lookups: tuple[str, ...] = ()
    allowed_host_loopback_ports: tuple[str, ...] = ()
    _command: commands.Command | None = None

    def spec(self) -> specs.ComponentSpec:
        return specs.ComponentSpec(
            workload_id=self.loopback_dir.parent.name, name="sockets-py", wasm_path=self.wasm,
            allowed_hosts=self.allowed_hosts,
            network=specs.NetworkAccess(self.loopback_dir, self.allowed_ip_name_lookups,
                                        self.allowed_host_loopback_ports),
        )

    def command(self) -> commands.Command:
        if self._command is None:
            self._command = commands.Command(self.spec(), self.settings)
        return self._command

    def start(self, *args: Any) -> GuestRun:
        return GuestRun(self.command(), [str(a) for a in args])

    def run(self, *args: Any) -> list[str]:
        return self.start(*args).finish()
