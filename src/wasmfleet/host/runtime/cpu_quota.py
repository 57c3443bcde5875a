"""A CPU cap per guest, enforced from wasmtime's epoch-deadline callback.

wasmtime has no CPU quota of its own, and a guest runs on a host thread that the OS schedules like
any other. Epoch interruption already stops a guest at its deadline; installing a callback instead
of a bare deadline makes the same ticks a place to throttle too. Every `CHECK_TICKS` epochs of
running wasm, the callback reads the guest thread's own CPU clock; once the thread has used its
share of the current period it sleeps out the rest of the period, as a cgroup's cpu.max
(quota/period) does. The sleep releases the GIL and the core.

Limits are in millicores, as Kubernetes writes CPU: 250 is a quarter of one core. The cap applies
per guest thread: a component served by N concurrent instances may use N times its cap, again
like a container's threads under a per-container quota divided by N. Time spent in host calls
(waiting on I/O) is not wasm and is not checked, but CPU the thread burns there counts toward the
period's usage.
"""

from __future__ import annotations

import ctypes
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from wasmfleet.host.plugin_api import handle_tables
from wasmfleet.host.runtime import hostfuncs

PERIOD_S = 0.1
"""Length of one accounting period (cgroup's default cpu.cfs_period_us is the same 100 ms)."""
CHECK_TICKS = 1
"""Epochs between two checks while wasm runs (one tick is 10 ms by default)."""

_CONTINUE = 0  # WASMTIME_UPDATE_DEADLINE_CONTINUE
_VP = ctypes.c_void_p
EpochCallback = ctypes.CFUNCTYPE(
    ctypes.c_size_t, ctypes.c_void_p, ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint64),
    ctypes.POINTER(ctypes.c_uint8),  # wasmtime_update_deadline_kind_t is uint8_t: a wider write clobbers the stack
)
_set_deadline_callback = handle_tables.c_function(
    "wasmtime_store_epoch_deadline_callback", None, _VP, EpochCallback, _VP, _VP
)


@dataclass
class Throttling:
    """How often and how long a component's guests were held back (summed over its instances)."""

    periods: int = 0
    seconds: float = 0.0


class Quota:
    """`millicores` of one core per guest thread; `throttling` collects what it cost."""

    def __init__(self, millicores: int, throttling: Throttling | None = None) -> None:
        if millicores <= 0:
            raise ValueError(f"a CPU quota needs a positive number of millicores, not {millicores}")
        self.millicores = millicores
        self.budget_s = PERIOD_S * millicores / 1000
        self.throttling = throttling if throttling is not None else Throttling()


class _Period:
    """One store's accounting: which thread runs it, and where the current period started."""

    __slots__ = ("cpu0", "thread", "wall0")

    def __init__(self) -> None:
        self.thread = 0
        self.wall0 = 0.0
        self.cpu0 = 0.0

    def restart(self, now: float) -> None:
        self.thread = threading.get_ident()
        self.wall0 = now
        self.cpu0 = time.thread_time()


def _hold_back(quota: Quota, period: _Period, limit: float | None) -> None:
    """Sleeps out the period when this thread used its share of it (never past `limit`)."""
    now = time.monotonic()
    if period.thread != threading.get_ident() or now - period.wall0 >= PERIOD_S:
        period.restart(now)
        return
    if time.thread_time() - period.cpu0 < quota.budget_s:
        return
    pause = period.wall0 + PERIOD_S - now
    if limit is not None:
        pause = min(pause, limit - now)
    if pause > 0:
        time.sleep(pause)
        quota.throttling.periods += 1
        quota.throttling.seconds += pause
    period.restart(time.monotonic())


def callback(stop: Callable[[], BaseException | None], quota: Quota | None,
             limit: Callable[[], float | None] = lambda: None, ticks: int = CHECK_TICKS) -> Any:
    """An epoch-deadline callback for one store.

    `stop` returns the exception to trap with (deadline passed, cancelled) or None to go on;
    `quota` throttles the thread when set; `limit` is the monotonic time a pause must not pass
    (the request's deadline). The caller keeps the returned object alive as long as the store.
    """
    period = _Period()

    def on_deadline(_ctx: int, _data: int, delta: Any, kind: Any) -> int:
        try:
            reason = stop()
            if reason is None and quota is not None:
                _hold_back(quota, period, limit())
                reason = stop()
        except BaseException as exc:  # a callback must never raise into wasmtime
            reason = exc
        if reason is not None:
            return hostfuncs.fail(reason)
        delta[0] = ticks
        kind[0] = _CONTINUE
        return 0

    return EpochCallback(on_deadline)


def install(store_ptr: int, cb: Any) -> None:
    """Makes `cb` (from `callback`) the store's epoch-deadline callback."""
    _set_deadline_callback(_VP(store_ptr), cb, None, None)

