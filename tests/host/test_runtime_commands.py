"""runtime.commands in process: a command component run with its own stdio, exit codes, cancel.

Checks: stdin, stdout and stderr of a run are the descriptors given (pipes here); argv and env
reach the guest; the exit code follows wasmtime (0, 1 for any other code through the preview1
adapter, 134 with a reason for a trap); one `Command` runs many times, each in a fresh store;
`Cancel` stops a guest that computes (epoch check), waits on stdin, or sleeps, within a few
seconds, and the outcome says cancelled; a component without wasi:cli/run is refused with a
ComponentError naming the file. Guests are the C programs of tests/conformance (clang + wasi-libc).
"""

from __future__ import annotations

import importlib.util
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from runtime_harness import build, runtime_settings

from wasmfleet.host.runtime import commands, specs
from wasmfleet.host.runtime.errors import ComponentError

_BUILD = Path(__file__).resolve().parents[1] / "conformance" / "build_programs.py"


def _program(name: str) -> Path:
    spec = importlib.util.spec_from_file_location("wasmfleet_conformance_build", _BUILD)
    assert spec is not None and spec.loader is not None
    module: Any = sys.modules.get(spec.name)
    if module is None:
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    path: Path = module.build_program(name)
    return path


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> specs.RuntimeSettings:
    return runtime_settings(cache_dir=tmp_path_factory.mktemp("command-cache"))


class Pipes:
    """stdin/stdout/stderr pipes for one run, read back after it."""

    def __init__(self, stdin: bytes = b"", close_stdin: bool = True) -> None:
        self.in_r, self.in_w = os.pipe()
        self.out_r, self.out_w = os.pipe()
        self.err_r, self.err_w = os.pipe()
        os.write(self.in_w, stdin)
        if close_stdin:
            os.close(self.in_w)
            self.in_w = -1
        self.stdio = commands.CommandStdio.of_fds(self.in_r, self.out_w, self.err_w)

    def outputs(self) -> tuple[bytes, bytes]:
        os.close(self.out_w)
        os.close(self.err_w)
        out = _drain(self.out_r)
        err = _drain(self.err_r)
        for fd in (self.in_r, self.in_w):
            if fd >= 0:
                os.close(fd)
        return out, err


def _drain(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    os.close(fd)
    return b"".join(chunks)


def _spec(wasm: Path, **kw: Any) -> specs.ComponentSpec:
    return specs.ComponentSpec("run", wasm.stem, wasm, **kw)


def test_stdio_args_and_env_reach_the_guest(settings: specs.RuntimeSettings) -> None:
    command = commands.Command(_spec(_program("stdio")), settings)
    try:
        pipes = Pipes(b"abc\n")
        outcome = command.run(["stdio.wasm"], pipes.stdio)
        out, err = pipes.outputs()
    finally:
        command.close()
    assert outcome == commands.Outcome(0)
    assert out.startswith(b"ABC\n")
    assert b"read 4 bytes" in out
    assert err == b"this goes to stderr\n"

    env_command = commands.Command(_spec(_program("args_env"), environment={"GREETING": "hey"}), settings)
    try:
        pipes = Pipes()
        assert env_command.run(["prog", "first", "second"], pipes.stdio).exit_code == 0
        out, _ = pipes.outputs()
    finally:
        env_command.close()
    assert b"argv[0]=[prog]\nargv[1]=[first]\nargv[2]=[second]\n" in out
    assert b"env: GREETING=hey\n" in out and b"environ=1\n" in out


def test_exit_codes_and_traps(settings: specs.RuntimeSettings) -> None:
    command = commands.Command(_spec(_program("exit_code")), settings)
    try:
        results = {}
        for args in (("0",), ("5",), ("0", "exit"), ("9", "exit"), ("1", "trap")):
            pipes = Pipes()
            results[args] = command.run(["exit_code.wasm", *args], pipes.stdio)
            pipes.outputs()
    finally:
        command.close()
    assert results[("0",)] == commands.Outcome(0)
    assert results[("5",)] == commands.Outcome(1)  # the preview1 adapter: any other code is 1
    assert results[("0", "exit")] == commands.Outcome(0)
    assert results[("9", "exit")] == commands.Outcome(1)
    trapped = results[("1", "trap")]
    assert trapped.exit_code == commands.TRAP_EXIT_CODE and not trapped.cancelled
    assert trapped.trap is not None and "unreachable" in trapped.trap


def test_run_command_reports_the_exit_code(settings: specs.RuntimeSettings) -> None:
    pipes = Pipes()
    code = commands.run_command(_spec(_program("exit_code")), settings, ["x", "3"], pipes.stdio)
    out, _ = pipes.outputs()
    assert code == 1
    assert out == b"exiting with 3\n"


@pytest.mark.parametrize("how", ["cpu", "stdin", "sleep"])
def test_cancel_stops_a_running_command(settings: specs.RuntimeSettings, how: str) -> None:
    command = commands.Command(_spec(_program("spin")), settings)
    pipes = Pipes(close_stdin=False)  # stdin stays open and empty: a reader would wait forever
    cancel = commands.Cancel()
    outcomes: list[commands.Outcome] = []
    thread = threading.Thread(target=lambda: outcomes.append(command.run(["spin", how], pipes.stdio, cancel)))
    try:
        thread.start()
        assert _wait_for_output(pipes.out_r) == b"started\n"
        time.sleep(0.3)
        assert thread.is_alive()  # still running: the guest does not end by itself
        started = time.monotonic()
        cancel.cancel()
        thread.join(10)
        assert not thread.is_alive()
        assert time.monotonic() - started < 5
    finally:
        command.close()
        pipes.outputs()
    assert outcomes == [commands.Outcome(commands.TRAP_EXIT_CODE, "cancelled", cancelled=True)]


def _wait_for_output(fd: int) -> bytes:
    """Reads up to the first newline (the guest may write a line in several pieces)."""
    data = b""
    while not data.endswith(b"\n"):
        chunk = os.read(fd, 100)
        if not chunk:
            break
        data += chunk
    return data


def test_a_component_without_wasi_cli_run_is_refused(settings: specs.RuntimeSettings) -> None:
    wasm = build("hello-wat")
    with pytest.raises(ComponentError, match="does not export wasi:cli/run") as info:
        commands.Command(_spec(wasm), settings)
    assert str(wasm) in str(info.value)


def _spin_for(command: commands.Command, seconds: float) -> tuple[float, float]:
    """Runs `spin cpu` for `seconds` of wall time on a thread of its own, then cancels it; returns
    (wall seconds, CPU seconds of the guest's thread)."""
    pipes = Pipes(close_stdin=False)
    cancel = commands.Cancel()
    measured: list[tuple[float, float]] = []

    def body() -> None:
        wall0, cpu0 = time.monotonic(), time.thread_time()
        command.run(["spin", "cpu"], pipes.stdio, cancel)
        measured.append((time.monotonic() - wall0, time.thread_time() - cpu0))

    thread = threading.Thread(target=body)
    thread.start()
    try:
        assert _wait_for_output(pipes.out_r) == b"started\n"
        time.sleep(seconds)
        cancel.cancel()
        thread.join(10)
        assert not thread.is_alive()
    finally:
        pipes.outputs()
    return measured[0]


def test_a_cpu_limit_holds_the_guest_to_its_share_of_a_core(settings: specs.RuntimeSettings) -> None:
    """cpuLimit 200 millicores: the spinning guest's thread uses at most a fifth of the wall time
    (plus one accounting period), and the throttling is counted. Unthrottled, the same guest uses
    all the CPU its thread gets (a whole core on an idle machine), so the bound bites wherever the
    thread would get more than a fifth of a core; no lower bound is asserted for the unthrottled
    run, since a loaded machine gives it less."""
    capped = commands.Command(_spec(_program("spin"), cpu_limit_millicores=200), settings)
    try:
        wall, cpu = _spin_for(capped, 1.5)
        assert capped.quota is not None
        assert cpu <= 0.2 * wall + 0.15, (wall, cpu)
        assert capped.quota.throttling.periods >= 3 and capped.quota.throttling.seconds > 0
    finally:
        capped.close()
