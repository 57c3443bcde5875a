"""wasi:io (error, poll, streams): pollables and byte streams.

Streams are small Python classes with a non-blocking core (`read` / `check_write` / `write`);
the blocking variants wait on the store's condition (see `store_state.WasiContext.wait`).
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from typing import Any

from wasmfleet.host.plugin_api import store_state
from wasmfleet.host.plugin_api.interfaces import OK, Interface, err, ok
from wasmfleet.host.plugin_api.stream_errors import StreamFailed

__all__ = ["StreamFailed"]  # defined in plugin_api so plugins' input streams can raise it too

WRITE_BUDGET = 1 << 20
"""Bytes a guest may write per check-write: large, so body copies take few host calls."""

CLOSED = err(("closed", None))

FD_WAIT_LIMIT = 0.25
"""Longest single kernel wait in `poll` (a cancel is noticed within it)."""
FD_WAIT_SHARED = 0.005
"""Kernel wait in `poll` when other, notification-driven pollables are polled too."""


class IoError:
    """wasi:io/error.error: an opaque error with a debug string."""

    def __init__(self, message: str) -> None:
        self.message = message


class Pollable:
    def ready(self) -> bool:
        return True

    def wait_timeout(self) -> float | None:
        """Seconds until this pollable becomes ready by itself (timers), None if unknown."""
        return None

    def wait_fd(self) -> tuple[int, int] | None:
        """(file descriptor, select.poll events) whose readiness makes this pollable ready, when
        there is one (sockets): `poll` then waits in the kernel instead of on the store's condition."""
        return None


class TimerPollable(Pollable):
    def __init__(self, deadline_ns: int) -> None:
        self.deadline_ns = deadline_ns

    def ready(self) -> bool:
        return time.monotonic_ns() >= self.deadline_ns

    def wait_timeout(self) -> float | None:
        return max(0.0, (self.deadline_ns - time.monotonic_ns()) / 1e9)


class CallbackPollable(Pollable):
    def __init__(self, is_ready: Callable[[], bool],
                 fd_wait: Callable[[], tuple[int, int] | None] | None = None) -> None:
        self.is_ready = is_ready
        self.fd_wait = fd_wait

    def ready(self) -> bool:
        return self.is_ready()

    def wait_fd(self) -> tuple[int, int] | None:
        return self.fd_wait() if self.fd_wait is not None else None


class InputStream:
    """Base: `read(n)` returns bytes (maybe empty when nothing is available yet) or None at the end."""

    def read(self, n: int) -> bytes | None:
        return None

    def ready(self) -> bool:
        return True

    def blocking_read(self, n: int) -> bytes | None:
        while True:
            data = self.read(n)
            if data is None or data:
                return data
            store_state.state().wait()


class BytesInput(InputStream):
    def __init__(self, data: bytes) -> None:
        self._view = memoryview(data)
        self._pos = 0

    def read(self, n: int) -> bytes | None:
        if self._pos >= len(self._view):
            return None
        chunk = bytes(self._view[self._pos : self._pos + n])
        self._pos += len(chunk)
        return chunk


class Channel:
    """A thread-safe byte queue fed by one thread (the HTTP front end) and read by the guest.

    `on_drain` is called (from the reading thread) when the buffered amount falls below the low
    water mark, so the producer can resume reading its socket.
    """

    HIGH_WATER = 4 << 20
    LOW_WATER = 1 << 20

    def __init__(self, cond: threading.Condition | None = None) -> None:
        self.chunks: collections.deque[bytes] = collections.deque()
        self.offset = 0  # bytes of chunks[0] already taken
        self.buffered = 0
        self.eof = False
        self.error: str | None = None
        self.cond = cond or threading.Condition()
        self.on_drain: Callable[[], None] | None = None
        self.paused = False

    def feed(self, data: bytes) -> bool:
        """Adds data; returns False when the producer should pause."""
        with self.cond:
            self.chunks.append(data)
            self.buffered += len(data)
            self.cond.notify_all()
            if self.buffered > self.HIGH_WATER:
                self.paused = True
                return False
            return True

    def close(self, error: str | None = None) -> None:
        with self.cond:
            self.eof = True
            self.error = error
            self.cond.notify_all()

    def take(self, n: int) -> bytes | None:
        with self.cond:
            if not self.chunks:
                if self.eof and self.error is not None:
                    raise StreamFailed(self.error)
                return None if self.eof else b""
            # Reads advance an offset into the first chunk rather than re-slicing what is left
            # (a 1 MB chunk read 4 KB at a time would otherwise be copied 256 times).
            first, off = self.chunks[0], self.offset
            if len(first) - off <= n:
                self.chunks.popleft()
                self.offset = 0
                first = first[off:] if off else first
                parts = [first]
                size = len(first)
                while self.chunks and size + len(self.chunks[0]) <= n:
                    nxt = self.chunks.popleft()
                    parts.append(nxt)
                    size += len(nxt)
                data = first if len(parts) == 1 else b"".join(parts)
            else:
                data = first[off:off + n]
                self.offset = off + n
            self.buffered -= len(data)
            resume = self.paused and self.buffered < self.LOW_WATER
            if resume:
                self.paused = False
        if resume and self.on_drain is not None:
            self.on_drain()
        return data

    def has_data(self) -> bool:
        return bool(self.chunks) or self.eof


class ChannelInput(InputStream):
    def __init__(self, channel: Channel) -> None:
        self.channel = channel

    def read(self, n: int) -> bytes | None:
        return self.channel.take(n)

    def ready(self) -> bool:
        return self.channel.has_data()

    def blocking_read(self, n: int) -> bytes | None:
        ch = self.channel
        while True:
            data = ch.take(n)
            if data is None or data:
                return data
            store_state.state().wait(cond=ch.cond, until=ch.has_data)


class OutputStream:
    """Base: an output that accepts everything (subclasses send it somewhere)."""

    closed = False

    def check_write(self) -> int:
        return WRITE_BUDGET

    def write(self, data: bytes) -> None:
        pass

    def flush(self) -> None:
        pass

    def ready(self) -> bool:
        return True


class CallbackOutput(OutputStream):
    def __init__(self, on_write: Callable[[bytes], None], on_flush: Callable[[], None] | None = None) -> None:
        self.on_write = on_write
        self.on_flush = on_flush

    def write(self, data: bytes) -> None:
        self.on_write(data)

    def flush(self) -> None:
        if self.on_flush is not None:
            self.on_flush()


# --- wasi:io/error ---------------------------------------------------------------------------

def _to_debug_string(e: IoError) -> str:
    return e.message


# --- wasi:io/poll ----------------------------------------------------------------------------

def _poll(pollables: list[Pollable]) -> list[int]:
    if not pollables:
        raise ValueError("poll called with an empty list")
    ctx = store_state.state()
    while True:
        ready = [i for i, p in enumerate(pollables) if p.ready()]
        if ready:
            return ready
        timeouts = [t for t in (p.wait_timeout() for p in pollables) if t is not None]
        fds = [w for w in (p.wait_fd() for p in pollables) if w is not None]
        if not fds:
            ctx.wait(min(timeouts) if timeouts else 0.05)
            continue
        # Sockets: wait in the kernel. Other pollables that only a notification makes ready
        # (HTTP bodies, name lookups) are rechecked every few milliseconds meanwhile, and the
        # wait is bounded so a cancelled run notices within FD_WAIT_LIMIT.
        others = len(fds) + len(timeouts) < len(pollables)
        limit = FD_WAIT_SHARED if others else FD_WAIT_LIMIT
        ctx.wait_fds(fds, min([limit, *timeouts]))


def _block(p: Pollable) -> None:
    _poll([p])


# --- wasi:io/streams: input ------------------------------------------------------------------

def _failing(fn: Callable[..., tuple[str, Any]]) -> Callable[..., tuple[str, Any]]:
    """Maps a failed source to the stream-error `last-operation-failed` (not a trap)."""

    def wrapper(*args: Any) -> tuple[str, Any]:
        try:
            return fn(*args)
        except StreamFailed as exc:
            return err(("last-operation-failed", IoError(str(exc))))

    return wrapper


@_failing
def _read(s: InputStream, n: int) -> tuple[str, Any]:
    data = s.read(n)
    return CLOSED if data is None else ok(data)


@_failing
def _blocking_read(s: InputStream, n: int) -> tuple[str, Any]:
    if n == 0:
        return ok(b"")
    data = s.blocking_read(n)
    return CLOSED if data is None else ok(data)


@_failing
def _skip(s: InputStream, n: int) -> tuple[str, Any]:
    data = s.read(n)
    return CLOSED if data is None else ok(len(data))


@_failing
def _blocking_skip(s: InputStream, n: int) -> tuple[str, Any]:
    data = s.blocking_read(n) if n else b""
    return CLOSED if data is None else ok(len(data))


def _in_subscribe(s: InputStream) -> Pollable:
    return CallbackPollable(s.ready, getattr(s, "wait_fd", None))


# --- wasi:io/streams: output -----------------------------------------------------------------

def _check_write(s: OutputStream) -> tuple[str, Any]:
    return CLOSED if s.closed else ok(s.check_write())


def _write(s: OutputStream, data: bytes) -> tuple[str, Any]:
    if s.closed:
        return CLOSED
    s.write(data)
    return OK


def _write_and_flush(s: OutputStream, data: bytes) -> tuple[str, Any]:
    if s.closed:
        return CLOSED
    if len(data) > 4096:
        raise ValueError("blocking-write-and-flush: more than 4096 bytes")
    s.write(data)
    s.flush()
    return OK


def _flush(s: OutputStream) -> tuple[str, Any]:
    if s.closed:
        return CLOSED
    s.flush()
    return OK


def _out_subscribe(s: OutputStream) -> Pollable:
    return CallbackPollable(s.ready, getattr(s, "wait_fd", None))


def _write_zeroes(s: OutputStream, n: int) -> tuple[str, Any]:
    return _write(s, bytes(n))


def _write_zeroes_flush(s: OutputStream, n: int) -> tuple[str, Any]:
    r = _write(s, bytes(n))
    if r == OK:
        s.flush()
    return r


@_failing
def _splice(out: OutputStream, src: InputStream, n: int) -> tuple[str, Any]:
    if out.closed:
        return CLOSED
    data = src.read(min(n, out.check_write()))
    if data is None:
        return CLOSED
    out.write(data)
    return ok(len(data))


@_failing
def _blocking_splice(out: OutputStream, src: InputStream, n: int) -> tuple[str, Any]:
    if out.closed:
        return CLOSED
    data = src.blocking_read(min(n, out.check_write())) if n else b""
    if data is None:
        return CLOSED
    out.write(data)
    return ok(len(data))


INTERFACES = {
    "wasi:io/error": Interface(
        "wasi:io/error", {"[method]error.to-debug-string": _to_debug_string}, ("error",)
    ),
    "wasi:io/poll": Interface(
        "wasi:io/poll",
        {
            "[method]pollable.ready": lambda p: p.ready(),
            "[method]pollable.block": _block,
            "poll": _poll,
        },
        ("pollable",),
    ),
    "wasi:io/streams": Interface(
        "wasi:io/streams",
        {
            "[method]input-stream.read": _read,
            "[method]input-stream.blocking-read": _blocking_read,
            "[method]input-stream.skip": _skip,
            "[method]input-stream.blocking-skip": _blocking_skip,
            "[method]input-stream.subscribe": _in_subscribe,
            "[method]output-stream.check-write": _check_write,
            "[method]output-stream.write": _write,
            "[method]output-stream.blocking-write-and-flush": _write_and_flush,
            "[method]output-stream.flush": _flush,
            "[method]output-stream.blocking-flush": _flush,
            "[method]output-stream.subscribe": _out_subscribe,
            "[method]output-stream.write-zeroes": _write_zeroes,
            "[method]output-stream.blocking-write-zeroes-and-flush": _write_zeroes_flush,
            "[method]output-stream.splice": _splice,
            "[method]output-stream.blocking-splice": _blocking_splice,
        },
        ("input-stream", "output-stream", "error"),
    ),
}
