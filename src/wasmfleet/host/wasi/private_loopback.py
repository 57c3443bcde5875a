"""A workload's private loopback: guest TCP/UDP ports on 127.0.0.1 / ::1 backed by AF_UNIX sockets.

Every workload has one directory (mode 0700) holding a socket file per bound port:
`<dir>/tcp-<port>` (SOCK_STREAM) and `<dir>/udp-<port>` (SOCK_DGRAM). Why AF_UNIX files:

- the names are deterministic, so the components of a workload running in several worker
  processes, and its service in yet another thread or process, meet at the same port without any
  broker: binding the file *is* reserving the port (the kernel refuses a second bind with
  EADDRINUSE, atomically, across processes);
- nothing is opened on the host's real network, so a guest port can never collide with a host
  port or be reached from outside;
- another workload has another directory, so it cannot reach these ports (it has no name for
  them), and other OS users cannot either (0700).

A client that connects or sends over the loopback binds its own socket to `tcp-<port>` /
`udp-<port>` with a port chosen here (an ephemeral one unless the guest bound one), so the
peer learns the client's port from the address `accept` / `recvfrom` returns. The guest only
ever sees IP addresses and ports.

AF_UNIX paths are limited to 107 bytes; a deep directory is reached through `/proc/self/fd/<fd>`
of a directory descriptor opened for the call (the kernel resolves it at bind and connect time,
so every process meets the same inode).

A process that dies without closing its sockets leaves their files behind; the directory itself
is removed when the workload stops (the host removes the workload's scratch directory), and
`wasmfleet run` removes its own.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import os
import random
import shutil
import socket
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

EPHEMERAL_PORTS = range(49152, 65536)
"""IANA's dynamic range, where ports chosen for a bind to port 0 come from."""

_MAX_PATH = 100  # sun_path holds 108 bytes with the terminating NUL; keep a margin
_ATTEMPTS = 64


class PrivateLoopback:
    """The loopback of one workload (stateless: everything is in the directory, so any number
    of these, in any process, agree)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def ensure(self) -> None:
        """Creates the directory (0700) if needed; idempotent and safe across processes."""
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.directory, 0o700)

    @contextlib.contextmanager
    def _path(self, kind: str, port: int) -> Iterator[str]:
        """The socket file of `kind` ("tcp" or "udp") port `port`, as bind/connect/sendto take it.

        A path too long for sun_path goes through a directory descriptor opened for this one
        call (never cached: a cached descriptor number could be closed and reused meanwhile)."""
        name = f"{kind}-{port}"
        direct = str(self.directory / name)
        if len(direct) <= _MAX_PATH:
            yield direct
            return
        fd = os.open(self.directory, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            yield f"/proc/self/fd/{fd}/{name}"
        finally:
            os.close(fd)

    def connect(self, sock: socket.socket, kind: str, port: int) -> None:
        """Connects the AF_UNIX `sock` to `port` (FileNotFoundError / ConnectionRefusedError:
        nothing is bound there; BlockingIOError: the listener's backlog is full)."""
        with self._path(kind, port) as path:
            sock.connect(path)

    def sendto(self, sock: socket.socket, data: bytes, kind: str, port: int) -> None:
        with self._path(kind, port) as path:
            sock.sendto(data, path)

    def bind(self, sock: socket.socket, kind: str, port: int) -> int:
        """Binds the AF_UNIX `sock` to `port` (0: an ephemeral port chosen here); returns the port.

        Raises OSError(EADDRINUSE) when the port is taken (for port 0: after many attempts)."""
        self.ensure()
        if port:
            with self._path(kind, port) as path:
                sock.bind(path)
            return port
        for _ in range(_ATTEMPTS):
            candidate = random.choice(EPHEMERAL_PORTS)
            try:
                with self._path(kind, candidate) as path:
                    sock.bind(path)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:  # someone holds it: try another
                    continue
                raise
            return candidate
        raise OSError(errno.EADDRINUSE, "no free ephemeral port on the private loopback")

    def release(self, kind: str, port: int) -> None:
        """Removes the socket file of a port this process bound (on close)."""
        with contextlib.suppress(OSError):
            os.unlink(self.directory / f"{kind}-{port}")

    @staticmethod
    def port_of(address: object) -> int | None:
        """The port in an AF_UNIX address returned by accept/recvfrom (None: unbound peer)."""
        if not isinstance(address, str) or not address:
            return None
        name = address.rsplit("/", 1)[-1]
        _, _, digits = name.partition("-")
        return int(digits) if digits.isdigit() else None


_fallback_dirs: dict[str, Path] = {}
_fallback_lock = threading.Lock()


def fallback_directory(workload_id: str) -> Path:
    """A loopback directory for a workload whose spec names none (in-process servers and tests
    that build specs by hand): one per workload id in this process, removed at exit."""
    with _fallback_lock:
        found = _fallback_dirs.get(workload_id)
        if found is None:
            found = Path(tempfile.mkdtemp(prefix="wasmfleet-net-")) / "net"
            _fallback_dirs[workload_id] = found
            atexit.register(shutil.rmtree, found.parent, True)
        return found


@contextlib.contextmanager
def temporary() -> Iterator[Path]:
    """A fresh private loopback directory for one run (`wasmfleet run`), removed afterwards."""
    parent = Path(tempfile.mkdtemp(prefix="wasmfleet-run-"))
    directory = parent / "net"
    try:
        yield directory
    finally:
        shutil.rmtree(parent, ignore_errors=True)
