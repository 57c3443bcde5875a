"""Guest calls that run on an event loop and are suspended, not blocked, while a host call waits.

A guest whose only slow imports can answer later (`Interface.suspends_with`: wasi:keyvalue on NATS)
is instantiated and called through wasmtime's async C API: the call runs on a fiber of its own,
and a host function that answers with a `Later` suspends that fiber, which returns control to the
loop. When the Later's future is done, the loop polls the call again and the guest resumes where
it stopped, with the answer. No thread is involved: on this 2-core machine, a guest waiting for a
NATS round trip on a wasm thread cost about twenty thread switches per request, most of its time.

Host calls that do not answer with a Later (every sync WASI function, the fast C entry) run
inside the poll as usual. One poll of a call is one step; `SuspendedCall` strings the steps
together. The store's resource table is made current for each poll (host functions find their
store through it), and the store must not be used by anything else until the call ends.
"""

from __future__ import annotations

import asyncio
import ctypes
import time
from collections.abc import Callable
from typing import Any

from wasmfleet.host.plugin_api import handle_tables, store_state

_VP = ctypes.c_void_p
_instantiate_async = handle_tables.c_function("wasmtime_component_linker_instantiate_async", _VP, _VP, _VP, _VP,
                                              _VP, _VP)
_call_async = handle_tables.c_function("wasmtime_component_func_call_async", _VP, _VP, _VP, _VP, ctypes.c_size_t,
                                       _VP, ctypes.c_size_t, _VP)
_poll = handle_tables.c_function("wasmtime_call_future_poll", ctypes.c_bool, _VP)
_delete = handle_tables.c_function("wasmtime_call_future_delete", None, _VP)


class NotSuspendable(Exception):
    """A guest's instantiation waited on a host call: it has to run where it may block."""


def instantiate(linker: int, ctx: int, component: int, instance: Any, table: handle_tables.ResourceTable) -> int:
    """Instantiates through the async API (a linker with async host functions refuses the sync
    one); returns the address of a wasmtime_error_t, 0 on success. Instantiation runs start
    functions only, which never wait on a Later here: it completes within one poll."""
    err = ctypes.c_void_p()
    previous = handle_tables.swap(table)
    try:
        future = _instantiate_async(linker, ctx, component, ctypes.byref(instance), ctypes.byref(err))
        try:
            if not _poll(future):
                raise NotSuspendable("the component waited on a host call while it was instantiated")
        finally:
            _delete(future)
    finally:
        handle_tables.swap(previous)
    table.state.waiting = None
    return err.value or 0


class SuspendedCall:
    """One call of a guest function on `loop`, from its first poll to its end.

    `finish(error)` is called on the loop once the call is over: `error` is the address of the
    wasmtime_error_t it failed with (0: it returned). A Later still pending at the store's
    deadline is cancelled, so the call ends then at the latest (the guest traps; `timed_out`
    says why)."""

    __slots__ = ("_args", "_err", "_future", "_timer", "finish", "loop", "state", "table", "timed_out")

    def __init__(self, loop: asyncio.AbstractEventLoop, table: handle_tables.ResourceTable,
                 finish: Callable[[int], None]) -> None:
        self.loop = loop
        self.table = table
        self.state: store_state.WasiContext = table.state
        self.finish = finish
        self.timed_out = False
        self._err = ctypes.c_void_p()
        self._future: int | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._args: Any = None

    def start(self, func: Any, ctx: int, args: Any, nargs: int) -> None:
        """Starts `func(*args)` (args: a wasmtime_component_val_t array, read at the first poll
        and owned by the caller until `finish`) and runs it until it ends or first waits."""
        self._args = args
        self.state.loop = self.loop
        self._future = _call_async(func, ctx, args, nargs, None, 0, ctypes.byref(self._err))
        self._step()

    def _step(self, _: Any = None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        state = self.state
        state.waiting = None
        previous = handle_tables.swap(self.table)
        try:
            done = _poll(self._future)
        finally:
            handle_tables.swap(previous)
        if done:
            self._end()
            return
        waiting = state.waiting
        if waiting is None:  # not waiting on a Later (wasmtime yielded): go on at the next turn
            self.loop.call_soon(self._step)
            return
        remaining = state.deadline - time.monotonic()
        if remaining < float("inf"):
            self._timer = self.loop.call_later(max(0.0, remaining), self._expire, waiting)
        waiting.add_done_callback(self._step)

    def _expire(self, waiting: asyncio.Future[Any]) -> None:
        self._timer = None
        if not waiting.done():
            self.timed_out = True
            waiting.cancel()  # its done-callback polls the call, which then traps

    def _end(self) -> None:
        future, self._future = self._future, None
        if future is not None:
            _delete(future)
        self.state.loop = None
        self._args = None
        # Drops the caller's callback before calling it: it usually refers back to this call, and
        # a cycle per request would be left to the cyclic collector, whose full passes over a
        # worker's heap showed as 40-50 ms stalls at the 99th percentile.
        finish, self.finish = self.finish, _finished
        finish(self._err.value or 0)


def _finished(error: int) -> None:
    raise AssertionError("a suspended call ended twice")
