"""A real redis-server (Debian's, scripts/deps.d/redis.sh) for tests and benchmarks.

Listens on 127.0.0.1 on a free port, no persistence, and can be stopped and started again on the
SAME port, so tests can check that the keyvalue backend recovers.

    with redis_server(tmp_path) as server:
        server.url; server.stop(); server.start()
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from wasmfleet.testing.nats import free_port


class RedisServerError(RuntimeError):
    """redis-server is missing or did not become ready."""


class RedisServer:
    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.port = port or free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self, ready_timeout_s: float = 15.0) -> None:
        if self._process is not None and self._process.poll() is None:
            return
        binary = shutil.which("redis-server")
        if binary is None:
            raise RedisServerError("redis-server not found: run scripts/deps.d/redis.sh")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.data_dir / "redis-server.log", "ab")  # noqa: SIM115 - handed to the child
        with log:
            self._process = subprocess.Popen(
                [binary, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
                 "--appendonly", "no", "--dir", str(self.data_dir)],
                stdout=log, stderr=subprocess.STDOUT)
        until = time.monotonic() + ready_timeout_s
        while time.monotonic() < until:
            if self._process.poll() is not None:
                raise RedisServerError(f"redis-server exited ({self.data_dir / 'redis-server.log'})")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.2) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return
            time.sleep(0.05)
        self.stop()
        raise RedisServerError(f"redis-server on port {self.port} not ready within {ready_timeout_s}s")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextlib.contextmanager
def redis_server(data_dir: Path, port: int | None = None) -> Iterator[RedisServer]:
    server = RedisServer(data_dir, port)
    server.start()
    try:
        yield server
    finally:
        server.stop()
