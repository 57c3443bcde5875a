"""`wasmfleet serve` as a user runs it, for the tests of its plugin flags: the real CLI in a
subprocess on a free port, asked over real HTTP."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
WASMFLEET = str(Path(sys.executable).parent / "wasmfleet")


class Served:
    """`wasmfleet serve GUEST ARGS...`; calling it GETs (or, with a body, POSTs) a path and answers
    the decoded JSON, or the bytes of any other content type."""

    def __init__(self, guest: Path, *args: str) -> None:
        self.proc = subprocess.Popen(
            [WASMFLEET, "serve", str(guest), "--addr", "127.0.0.1:0",
             "--cache-dir", str(REPO / ".cache" / "runtime-test-components"), *args],
            stderr=subprocess.PIPE, text=True)
        assert self.proc.stderr is not None
        line = self.proc.stderr.readline()
        assert "serving" in line, line
        self.port = int(line.split("http://127.0.0.1:")[1].split("/")[0])

    def __call__(self, path: str, body: bytes | None = None) -> Any:
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=body,
                                         method="POST" if body is not None else "GET")
        with urllib.request.urlopen(request, timeout=60) as response:
            data = response.read()
            return json.loads(data) if response.headers.get("content-type") == "application/json" else data

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        assert self.proc.stderr is not None
        self.proc.stderr.close()


@contextlib.contextmanager
def serving(guest: Path) -> Iterator[Callable[..., Served]]:
    """Starts `Served` instances of `guest` on demand; stops them all on exit."""
    started: list[Served] = []

    def run(*args: str) -> Served:
        started.append(Served(guest, *args))
        return started[-1]

    try:
        yield run
    finally:
        for served in started:
            served.stop()
