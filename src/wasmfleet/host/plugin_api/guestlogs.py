"""Per-workload guest logs: what components print on stdout/stderr, kept for `wasmfleet logs`.

Writing happens in whichever process runs the guest (the agent, or one of several worker
processes), so the file is shared by processes that know nothing of each other:

- one JSON object per line, {"time", "stream", "component", "text"}, in <log_dir>/<workloadId>.log;
- the file is opened with O_APPEND and each line goes out in one write(), so lines from several
  processes never interleave within a line;
- past `max_bytes` the file is renamed to <workloadId>.log.1 (replacing the previous one) under a
  lock file, so a workload keeps at most about twice `max_bytes`; a writer whose file was renamed
  (by another process) or removed (workload stopped) notices on its next line and reopens.

A failing disk never fails the guest: write errors are dropped (and said once in the process log).
Reading (`tail`) is for the agent, off its event loop: the newest lines, from .log.1 then .log.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

log = logging.getLogger(__name__)

MAX_BYTES = 5 << 20
"""Size past which a workload's log file is rotated to .1."""

_READ_BLOCK = 64 << 10


def file_name(workload_id: str) -> str:
    """The log file of a workload: its id with anything but [A-Za-z0-9-_.] replaced (no path tricks)."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in workload_id) or "_"
    return f"{safe}.log"


def log_path(log_dir: Path, workload_id: str) -> Path:
    return log_dir / file_name(workload_id)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


class GuestLog:
    """Appends one component's output lines to its workload's log file (thread-safe)."""

    def __init__(self, path: Path, component: str, max_bytes: int = MAX_BYTES) -> None:
        self.path = path
        self.component = component
        self.max_bytes = max_bytes
        self._file: BinaryIO | None = None
        self._lock = threading.Lock()
        self._complained = False

    def write(self, stream: str, text: str) -> None:
        record = {"time": _now(), "stream": stream, "component": self.component, "text": text}
        line = json.dumps(record, ensure_ascii=False).encode("utf-8", "replace") + b"\n"
        with self._lock:
            try:
                file = self._current()
                file.write(line)  # unbuffered FileIO + O_APPEND: one write(2) per line
                if os.fstat(file.fileno()).st_size > self.max_bytes:
                    self._rotate(file)
            except OSError as exc:
                if not self._complained:
                    self._complained = True
                    log.warning("guest log %s not written: %s", self.path, exc)

    def _current(self) -> BinaryIO:
        """Our open file, reopened when another process rotated it or the workload's stop removed it."""
        if self._file is not None:
            try:
                same = os.stat(self.path).st_ino == os.fstat(self._file.fileno()).st_ino
            except FileNotFoundError:
                same = False
            if same:
                return self._file
            self._close_file()
        self._file = open(self.path, "ab", buffering=0)  # noqa: SIM115 (kept open across writes)
        return self._file

    def _rotate(self, file: BinaryIO) -> None:
        # Several processes may cross the limit together: the lock and the inode check make sure
        # only the first renames (a second rename would replace the full .1 with a nearly empty file).
        with open(f"{self.path}.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            with contextlib.suppress(FileNotFoundError):
                if os.stat(self.path).st_ino == os.fstat(file.fileno()).st_ino:
                    os.replace(self.path, f"{self.path}.1")
        self._close_file()

    def _close_file(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None

    def close(self) -> None:
        with self._lock:
            self._close_file()


def for_component(log_dir: Path | None, workload_id: str, component: str) -> GuestLog | None:
    """The sink for one component of a workload, or None when guest logs are not kept (serve)."""
    if log_dir is None:
        return None
    return GuestLog(log_path(log_dir, workload_id), component)


def remove(log_dir: Path, workload_id: str) -> None:
    """Deletes a workload's log files (on stop). Blocking: run off the loop."""
    path = log_path(log_dir, workload_id)
    for victim in (path, Path(f"{path}.1"), Path(f"{path}.lock")):
        with contextlib.suppress(FileNotFoundError):
            victim.unlink()


# ------------------------------------------------------------------------------------------ reading


@dataclass(frozen=True)
class Line:
    time: datetime | None
    stream: str
    component: str
    text: str


def _parse(raw: bytes) -> Line | None:
    try:
        obj = json.loads(raw)
    except ValueError:
        return None  # a line cut short by a full disk: skip it
    if not isinstance(obj, dict):
        return None
    when: datetime | None = None
    stamp = obj.get("time")
    if isinstance(stamp, str):
        with contextlib.suppress(ValueError):
            when = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return Line(when, str(obj.get("stream", "")), str(obj.get("component", "")), str(obj.get("text", "")))


def _lines_backwards(path: Path) -> Iterator[bytes]:
    """The complete lines of a file, newest first, reading blocks from the end."""
    try:
        file = open(path, "rb")  # noqa: SIM115 (closed in finally; a generator)
    except FileNotFoundError:
        return
    try:
        end = os.fstat(file.fileno()).st_size
        rest = b""
        while end > 0:
            start = max(0, end - _READ_BLOCK)
            file.seek(start)
            chunk = file.read(end - start) + rest
            end = start
            parts = chunk.split(b"\n")
            rest = parts[0]  # may continue in the previous block
            for part in reversed(parts[1:]):
                if part:
                    yield part
        if rest:
            yield rest
    finally:
        file.close()


def tail(
    log_dir: Path, workload_id: str, lines: int, since: datetime | None = None, max_bytes: int = 512 << 10
) -> tuple[list[Line], bool]:
    """The newest `lines` lines (0 = all that fit) at or after `since`, oldest first, and whether
    older lines were left out because of `max_bytes` (replies must fit in one NATS message)."""
    path = log_path(log_dir, workload_id)
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)  # a time without zone is taken as UTC, as written
    picked: list[Line] = []
    size = 0
    truncated = False
    for source in (path, Path(f"{path}.1")):
        for raw in _lines_backwards(source):
            line = _parse(raw)
            if line is None:
                continue
            if since is not None and line.time is not None and line.time < since:
                return list(reversed(picked)), truncated
            if lines > 0 and len(picked) >= lines:
                return list(reversed(picked)), truncated
            size += len(raw)
            if size > max_bytes:
                return list(reversed(picked)), True
            picked.append(line)
    return list(reversed(picked)), truncated
