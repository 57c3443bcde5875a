"""host.service_supervision in process, with a real command component (tests/components/service-c,
clang + wasi-libc + the preview1 adapter) and the runtime's Command.

Checks:
- the restart policy: maxRestarts <= 0 means the default (10), a uint64 beyond int32 is capped there
  (the status field is int32); the backoff doubles from 0.5 s and stops at 30 s;
- a failed run is described in one line: "exit code N", or "trap: ..." cut to 300 characters;
- output lines reach the guest log sink as component "service" (stdout and stderr); a flush does
  not end a line, output without newlines is cut every 16 KiB, the rest comes out at the end;
- a run whose backoff was reset by a long enough run restarts after the first backoff each time;
- stop with no time to wait abandons a spinning run (returns False, says so in the log), and the
  cancellation still ends that run's thread moments later; stop while backing off ends at once.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from runtime_harness import runtime_settings

from wasmfleet.bus import messages
from wasmfleet.host import service_supervision as sv
from wasmfleet.host.plugin_api import guestlogs
from wasmfleet.host.runtime import commands, specs

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.components.build import build_component

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def wasm() -> Path:
    return build_component("service-c")


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> specs.RuntimeSettings:
    return runtime_settings(cache_dir=tmp_path_factory.mktemp("service-cache"))


def command(wasm: Path, settings: specs.RuntimeSettings, workload_id: str, **env: str) -> commands.Command:
    return commands.Command(specs.ComponentSpec(workload_id, "service", wasm, environment=env), settings)


def test_restart_policy_defaults_and_backoff() -> None:
    assert sv.RestartPolicy.for_service(0).max_restarts == sv.DEFAULT_MAX_RESTARTS == 10
    assert sv.RestartPolicy.for_service(-3).max_restarts == 10
    assert sv.RestartPolicy.for_service(4).max_restarts == 4
    huge = sv.RestartPolicy.for_service(1099511627776)  # the wire's uint64 allows it
    assert huge.max_restarts == 2**31 - 1
    encoded = messages.encode(messages.ServiceStatus(state="running", max_restarts=huge.max_restarts))
    assert messages.decode(messages.ServiceStatus, encoded).max_restarts == 2**31 - 1
    policy = sv.RestartPolicy()
    assert [policy.backoff(n) for n in range(1, 9)] == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]


def test_output_without_newlines_is_cut_into_bounded_lines(tmp_path: Path) -> None:
    sink = guestlogs.GuestLog(guestlogs.log_path(tmp_path, "w"), "service")
    out = sv.LineOutput("w/service", "stdout", sink)
    for _ in range(5):
        out.write(b"x" * 10_000)
    out.flush()  # a flush is not a line end
    out.write(b"y\nlast")
    out.close()
    sink.close()
    lines, _ = guestlogs.tail(tmp_path, "w", 0)
    texts = [ln.text for ln in lines]
    assert [len(t) for t in texts] == [sv.LINE_MAX_BYTES] * 3 + [50_000 - 3 * sv.LINE_MAX_BYTES + 1, 4]
    assert texts[-2].endswith("xy") and texts[-1] == "last"


def test_failures_are_described_in_one_bounded_line() -> None:
    assert sv.describe_failure(commands.Outcome(1)) == "exit code 1"
    assert sv.describe_failure(commands.Outcome(134, "wasm trap:\n  unreachable")) == "trap: wasm trap: unreachable"
    long = sv.describe_failure(commands.Outcome(134, "x" * 1000))
    assert len(long) == sv.ERROR_CHARS and long.endswith("...") and long.startswith("trap: xxx")


async def test_output_reaches_the_guest_log_and_a_reset_backoff_stays_short(
    tmp_path: Path, wasm: Path, settings: specs.RuntimeSettings
) -> None:
    sink = guestlogs.GuestLog(guestlogs.log_path(tmp_path, "w-reset"), "service")
    # stable_run_s 0: every run counts as long enough to reset the backoff, so each restart waits
    # the first backoff (0.3 s) instead of 0.3, 0.6, 1.2 s.
    policy = sv.RestartPolicy(max_restarts=3, first_backoff_s=0.3, stable_run_s=0.0)
    supervisor = sv.ServiceSupervisor("w-reset", command(wasm, settings, "w-reset", SERVICE_MODE="exit"),
                                      policy, guest_log=sink)
    began = time.monotonic()
    supervisor.start()
    while supervisor.state is not sv.State.FAILED:
        assert time.monotonic() - began < 20, supervisor.status()
        await asyncio.sleep(0.02)
    took = time.monotonic() - began
    assert 0.9 <= took < 0.3 + 0.6 + 1.2, f"{took:.2f}s: the backoff was not reset"
    assert supervisor.status().restart_count == 3
    lines, _ = guestlogs.tail(tmp_path, "w-reset", 0)
    assert [(ln.stream, ln.component, ln.text) for ln in lines] == [("stdout", "service", "service exiting with 1")] * 4
    # The owner stops it, as the host does: the supervising task ends and closes the log (left
    # to the event loop's teardown, the file was left open).
    assert await supervisor.stop() is True
    assert sink._file is None


async def test_stop_abandons_a_run_it_cannot_wait_for_and_the_cancel_still_ends_it(
    wasm: Path, settings: specs.RuntimeSettings, caplog: Any
) -> None:
    supervisor = sv.ServiceSupervisor("w-abandon", command(wasm, settings, "w-abandon", SERVICE_MODE="spin"),
                                      sv.RestartPolicy())
    supervisor.start()
    await asyncio.sleep(0.3)  # spinning by now
    thread = next(t for t in threading.enumerate() if t.name == "service w-abandon")
    with caplog.at_level(logging.WARNING, logger=sv.__name__):
        assert await supervisor.stop(grace_s=0.0) is False
    assert "did not end within 0.0s of its cancellation: abandoned" in caplog.text
    await asyncio.to_thread(thread.join, 5.0)
    assert not thread.is_alive()  # cancelled at its next epoch check all the same


async def test_stop_while_backing_off_ends_at_once(wasm: Path, settings: specs.RuntimeSettings) -> None:
    policy = sv.RestartPolicy(max_restarts=5, first_backoff_s=30.0)
    supervisor = sv.ServiceSupervisor("w-backoff", command(wasm, settings, "w-backoff", SERVICE_MODE="trap"),
                                      policy)
    supervisor.start()
    began = time.monotonic()
    while supervisor.state is not sv.State.RESTARTING:
        assert time.monotonic() - began < 20
        await asyncio.sleep(0.02)
    assert supervisor.down and supervisor.status().last_exit_code == commands.TRAP_EXIT_CODE
    assert "after a 30s backoff" in supervisor.message()
    began = time.monotonic()
    assert await supervisor.stop() is True
    assert time.monotonic() - began < 1.0
    assert supervisor.state is sv.State.STOPPING and supervisor.status().restart_count == 0
