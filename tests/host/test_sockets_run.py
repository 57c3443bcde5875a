"""`wasmfleet run` grants wasi:sockets as hosts do (a real `python -m wasmfleet run` process).

Checks: a command component gets a private loopback of its own for the run (the sockets-py
guest's option and state checks pass, which bind, listen, accept and connect on it), the
temporary loopback directory is gone after the run, and `--allow-host` is what lets it connect
to a non-loopback address (access-denied without it).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from runtime_harness import build

from wasmfleet.host.runtime import specs


@pytest.fixture(scope="module")
def guest() -> Path:
    return build("sockets-py")


Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def run(persistent_settings: specs.RuntimeSettings, tmp_path: Path) -> Run:
    """`wasmfleet run ARGS` with TMPDIR in this test's directory and the shared compiled cache."""
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    cache = str(persistent_settings.cache_dir)

    def call(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "wasmfleet", "run", "--cache-dir", cache, *args],
                              capture_output=True, text=True, env=env, timeout=300)

    return call


def test_run_has_a_private_loopback_removed_afterwards(guest: Path, tmp_path: Path, run: Run) -> None:
    done = run(str(guest), "options")
    assert done.returncode == 0, done.stderr
    assert "accepted-remote-is-peer True" in done.stdout.splitlines()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("wasmfleet-run-")] == []


def test_run_connects_out_only_with_allow_host(guest: Path, run: Run) -> None:
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.connect(("192.0.2.254", 9))
    ip = probe.getsockname()[0]
    probe.close()
    assert not ip.startswith("127."), "this test needs a non-loopback IPv4 address on the machine"
    server = socket.create_server((ip, 0))
    port = server.getsockname()[1]

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                while data := conn.recv(4096):
                    conn.sendall(data.upper())

    threading.Thread(target=serve, daemon=True).start()
    try:
        denied = run(str(guest), "tcp-client", ip, str(port), "hi")
        assert denied.stdout.splitlines()[-1] == "error: access-denied"
        allowed = run("--allow-host", ip, str(guest), "tcp-client", ip, str(port), "hi")
        assert allowed.stdout.splitlines()[-1] == "reply: HI", allowed.stderr
    finally:
        server.close()
