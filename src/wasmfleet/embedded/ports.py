"""Stable loopback ports across `wasmfleet up` runs, remembered in DATA_DIR/ports.json.

Reusing the same ports on a rerun keeps the kubeconfig, the gateway URL and the hosts' addresses valid,
which is what "resume with the state intact" means to a user with a terminal full of curl lines. A port
taken by something else meanwhile is replaced by a fresh one (and the change is visible in the summary).
"""

from __future__ import annotations

import contextlib
import json
import socket
from pathlib import Path


def is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class PortBook:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._ports: dict[str, int] = {}
        with contextlib.suppress(OSError, ValueError):
            loaded = json.loads(path.read_text())
            if isinstance(loaded, dict):
                self._ports = {str(k): int(v) for k, v in loaded.items()}
        self._taken: set[int] = set()

    def port(self, name: str, preferred: int = 0) -> int:
        """The port for ``name``: the remembered one if still free, else ``preferred`` if free, else any."""
        for candidate in (self._ports.get(name, 0), preferred):
            if candidate and candidate not in self._taken and is_free(candidate):
                return self._take(name, candidate)
        port = free_port()
        while port in self._taken:
            port = free_port()
        return self._take(name, port)

    def _take(self, name: str, port: int) -> int:
        self._ports[name] = port
        self._taken.add(port)
        return port

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(self._ports, indent=2, sort_keys=True))
