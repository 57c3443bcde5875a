"""Worker processes that share one HTTP port (SO_REUSEPORT) and obey route updates over a pipe.

Threads cannot scale wasm serving under the GIL (wasm-host-notes.md, pitfall 6), so each worker
is a process with its own engine, event loop and wasm thread. The kernel spreads connections
across the workers' listening sockets. The parent sends commands (route, unroute, stats, stop)
to every worker and waits for each answer, so a route is live everywhere when `route()` returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing.connection
import os
import signal
import socket
import subprocess
import sys
import threading
from typing import Any

from wasmfleet.host.runtime import serving
from wasmfleet.host.runtime.errors import RuntimeUnavailable
from wasmfleet.host.runtime.specs import RuntimeSettings
from wasmfleet.lifecycle import orphans

log = logging.getLogger(__name__)


def listening_socket(host: str, port: int, listen: bool = True) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    if listen:
        sock.listen(1024)
    sock.setblocking(False)
    return sock


def worker_main(conn: multiprocessing.connection.Connection, host: str, port: int,
                settings: RuntimeSettings, log_level: int, initial: list[tuple[Any, ...]]) -> None:
    """Entry point of a worker process."""
    # The host stops its workers (command "stop", then SIGKILL): a Ctrl-C reaching the whole process
    # group must not drop their in-flight requests while the host drains.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(level=log_level, format="%(asctime)s %(levelname)s worker: %(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(conn, host, port, settings, initial))


async def _serve(conn: multiprocessing.connection.Connection, host: str, port: int,
                 settings: RuntimeSettings, initial: list[tuple[Any, ...]]) -> None:
    loop = asyncio.get_running_loop()
    core = serving.ServingCore(settings)
    for route in initial:  # live before the first connection is accepted
        await core.route(*route)
    await core.start(listening_socket(host, port))
    done = asyncio.Event()

    async def handle(cmd: tuple[Any, ...]) -> Any:
        op = cmd[0]
        if op == "route":
            await core.route(*cmd[1:])
            return None
        if op == "unroute":
            core.unroute(cmd[1])
            return None
        if op == "subscribe":
            await core.subscribe(*cmd[1:])
            return None
        if op == "unsubscribe":
            await core.unsubscribe(cmd[1])
            return None
        if op == "stats":
            return core.stats()
        if op == "stop":
            await core.stop(cmd[1])
            done.set()
            return None
        raise ValueError(f"unknown command {op!r}")

    def reader() -> None:
        while True:
            try:
                cmd = conn.recv()
            except (EOFError, OSError):
                # Parent went away: stop serving.
                loop.call_soon_threadsafe(done.set)
                return
            fut = asyncio.run_coroutine_threadsafe(handle(cmd), loop)
            try:
                reply: tuple[str, Any] = ("ok", fut.result())
            except Exception as exc:
                reply = ("error", exc)
            try:
                conn.send(reply)
            except (OSError, ValueError):
                return
            if cmd[0] == "stop":
                return

    conn.send(("ok", "ready"))
    threading.Thread(target=reader, name="commands", daemon=True).start()
    await done.wait()


class Worker:
    """The parent's handle on one worker process."""

    def __init__(self, index: int, host: str, port: int, settings: RuntimeSettings,
                 initial: list[tuple[Any, ...]] | None = None) -> None:
        # A plain `python -m` child over a socketpair, not multiprocessing's spawn: spawn re-imports
        # the parent's __main__ (for `wasmfleet` that is the whole CLI, seconds of imports).
        self.index = index
        parent_sock, child_sock = socket.socketpair()
        # Started from the event loop's thread (the parent-death signal is tied to the forking thread).
        self.process = subprocess.Popen(
            [sys.executable, "-m", "wasmfleet.host.runtime.workers", str(child_sock.fileno()), str(os.getpid())],
            pass_fds=(child_sock.fileno(),),
        )
        child_sock.close()
        self.conn = multiprocessing.connection.Connection(parent_sock.detach())
        self.conn.send((host, port, settings, logging.getLogger().level, initial or []))
        self.lock = asyncio.Lock()

    async def ready(self, timeout: float = 60.0) -> None:
        def wait() -> Any:
            if not self.conn.poll(timeout):
                raise RuntimeUnavailable(f"worker {self.index} did not start within {timeout:g}s")
            return self.conn.recv()

        await asyncio.to_thread(wait)

    async def call(self, *cmd: Any, timeout: float = 120.0) -> Any:
        if not self.alive():
            raise RuntimeUnavailable(f"worker {self.index} (pid {self.process.pid}) is not running")

        def roundtrip() -> Any:
            self.conn.send(cmd)
            if not self.conn.poll(timeout):
                raise RuntimeUnavailable(f"worker {self.index} did not answer {cmd[0]!r}")
            return self.conn.recv()

        async with self.lock:
            try:
                status, value = await asyncio.to_thread(roundtrip)
            except (EOFError, OSError) as exc:
                raise RuntimeUnavailable(f"worker {self.index} went away: {exc}") from None
        if status == "error":
            raise value
        return value

    def alive(self) -> bool:
        return self.process.poll() is None

    def join(self, timeout: float) -> None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout)

    def kill(self) -> None:
        if self.alive():
            self.process.kill()
        self.join(5)
        self.conn.close()


if __name__ == "__main__":
    # A worker never outlives its host, however the host ends (SIGKILL included): no orphan keeps
    # serving the port or holding a core. See lifecycle.orphans.
    orphans.die_with_parent(signal.SIGKILL, int(sys.argv[2]))
    _conn = multiprocessing.connection.Connection(int(sys.argv[1]))
    _host, _port, _settings, _level, _initial = _conn.recv()
    worker_main(_conn, _host, _port, _settings, _level, _initial)
