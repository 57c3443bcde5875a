"""Start a real `wasmfleet apiserver` subprocess for tests and benchmarks.

    with running_apiserver(tmp_path / "api") as kubeconfig:
        ...  # KUBECONFIG=kubeconfig for kubectl / kubernetes_asyncio

Ready means DATA_DIR/kubeconfig exists: the server writes it atomically only once it listens, with the
real port and token. `ApiServerProcess` adds stop / kill -9 / restart (same data dir) for durability tests.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

_LAUNCH = "from wasmfleet.cli.main import main; main()"


class ApiServerProcess:
    def __init__(self, data_dir: Path, *extra_args: str) -> None:
        self.data_dir = Path(data_dir)
        self.extra_args = extra_args
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def kubeconfig(self) -> Path:
        return self.data_dir / "kubeconfig"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "apiserver.log"

    def start(self, timeout_s: float = 30.0) -> Path:
        """Launch and wait until the server listens; returns the kubeconfig path."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.kubeconfig.unlink(missing_ok=True)  # a stale one from a previous run must not count as ready
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child, closed after Popen
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", _LAUNCH, "apiserver", "--data-dir", str(self.data_dir), "--port", "0",
                 *self.extra_args],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        finally:
            log.close()
        deadline = time.monotonic() + timeout_s
        while not self.kubeconfig.exists():
            if self.proc.poll() is not None:
                raise RuntimeError(f"wasmfleet apiserver exited with {self.proc.returncode}: {self._log_tail()}")
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"wasmfleet apiserver not ready after {timeout_s}s: {self._log_tail()}")
            time.sleep(0.02)
        return self.kubeconfig

    def _log_tail(self) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "(no log)"
        return " | ".join(lines[-5:])

    @property
    def pid(self) -> int:
        assert self.proc is not None, "not started"
        return self.proc.pid

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM and wait (graceful: open watches end, pending commits finish)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """SIGKILL (kill -9): no cleanup at all, as in a crash."""
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def restart(self, timeout_s: float = 30.0) -> Path:
        self.stop()
        return self.start(timeout_s)


@contextlib.contextmanager
def running_apiserver(data_dir: Path, *extra_args: str) -> Iterator[Path]:
    """A running API server on a free port; yields its kubeconfig path and stops it afterwards."""
    server = ApiServerProcess(data_dir, *extra_args)
    server.start()
    try:
        yield server.kubeconfig
    finally:
        server.stop()


@contextlib.contextmanager
def apiserver_process(data_dir: Path, *extra_args: str) -> Iterator[ApiServerProcess]:
    """Like running_apiserver, but yields the process handle (kill / restart)."""
    server = ApiServerProcess(data_dir, *extra_args)
    server.start()
    try:
        yield server
    finally:
        server.stop()
