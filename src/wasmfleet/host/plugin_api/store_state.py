"""Per-store WASI state: environment, preopens, the request deadline, the wake-up condition.

Host functions reach it through `handle_tables.current().state`. Blocking host calls (poll, blocking
reads, outgoing HTTP) wait on `cond` and give up when the request's deadline passes, because epoch
interruption only stops code running inside wasm, not a host call that waits.
"""

from __future__ import annotations

import asyncio
import select
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from wasmfleet.host.plugin_api import guestlogs, handle_tables


class DeadlineExceeded(Exception):
    """The request ran out of time while the guest waited inside a host call."""


class GuestExit(Exception):
    """The guest called wasi:cli/exit."""

    def __init__(self, code: int) -> None:
        self.code = code
        super().__init__(f"guest exited with code {code}")


@dataclass
class WasiContext:
    workload_id: str = ""
    component: str = ""
    """The component's name within its workload."""
    environment: list[tuple[str, str]] = field(default_factory=list)
    arguments: list[str] = field(default_factory=list)
    preopens: list[tuple[Any, str]] = field(default_factory=list)
    """(Descriptor, guest path) pairs, built by wasi.filesystem from the spec's preopens."""
    allowed_hosts: tuple[str, ...] = ()
    config: dict[str, str] = field(default_factory=dict)
    """The component's config (for wasi:config-style plugins)."""
    grants: tuple[Any, ...] = ()
    """The workload's grants (specs.Grant: namespace, package, interfaces, name, config)."""
    log_name: str = "guest"
    guest_log: guestlogs.GuestLog | None = None
    """Where stdout/stderr lines also go, tagged with the workload (None: the process log only)."""
    stdio: Any = None
    """A command run's stdin/stdout/stderr (runtime.commands.CommandStdio: three stream factories);
    None: empty stdin, stdout/stderr to the log (components serving HTTP)."""
    network: Any = None
    """What wasi:sockets may reach (wasi.socket_policy.NetworkAccess; None: the defaults)."""
    sockets: Any = None
    """This store's wasi:sockets state (made by wasi.sockets on first use)."""
    deadline: float = float("inf")
    """time.monotonic() after which blocking host calls fail."""
    before_wait: Callable[[], None] | None = None
    """Called before a host call blocks (the response sink sends what the guest has written)."""
    loop: asyncio.AbstractEventLoop | None = None
    """The event loop the guest runs on when it can be suspended (runtime.suspension): host
    functions of interfaces that suspend start their work there and answer with a `Later`
    instead of waiting. None: the guest runs on a thread of its own, and host functions block."""
    waiting: asyncio.Future[Any] | None = None
    """The `Later` future the suspended guest waits on (set by the host-call entry)."""
    _cond: threading.Condition | None = None

    @property
    def cond(self) -> threading.Condition:
        """Notified whenever an input source gains data (request body chunks, outgoing responses).

        Created on first use: most requests never wait, and a Condition is not free.
        """
        if self._cond is None:
            self._cond = threading.Condition()
        return self._cond

    @cond.setter
    def cond(self, value: threading.Condition) -> None:
        self._cond = value

    def wait(self, timeout: float | None = None, cond: threading.Condition | None = None,
             until: Callable[[], bool] | None = None) -> None:
        """Waits for a notification on `cond` (default: this store's), at most until `timeout`
        seconds or the deadline; with `until`, not at all once it holds (checked under the lock,
        so a notification between the caller's check and the wait is not lost)."""
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise DeadlineExceeded("request deadline exceeded while waiting in a host call")
        if timeout is None or timeout > remaining:
            timeout = remaining
        if self.before_wait is not None:
            self.before_wait()
        cond = cond or self.cond
        with cond:
            if until is None or not until():
                cond.wait(min(timeout, 1.0))

    def wait_fds(self, fds: list[tuple[int, int]], timeout: float) -> None:
        """Waits until one of (fd, poll events) is ready, at most `timeout` seconds or the deadline.

        Sockets are waited for in the kernel rather than on `cond`. A cancelled command lowers
        the deadline without being able to wake the poll: `timeout` is bounded by the caller."""
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise DeadlineExceeded("request deadline exceeded while waiting in a host call")
        if self.before_wait is not None:
            self.before_wait()
        poller = select.poll()
        for fd, events in fds:
            poller.register(fd, events)
        poller.poll(max(0, int(min(timeout, remaining) * 1000)))

    def notify(self) -> None:
        with self.cond:
            self.cond.notify_all()


def state() -> WasiContext:
    ctx: WasiContext = handle_tables.current().state
    return ctx
