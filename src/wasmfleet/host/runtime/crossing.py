"""Calls from one component of a workload into another, within the store of the current call.

A component's import that another component of the workload exports is linked to a forwarder:
a host function whose callback calls the provider's exported function in the same store. The
two signatures were checked equal at link time (`linking.resolve_workload`) and resources may
not cross, so the caller's argument values (wasmtime's C representation, already copied out of
the caller's memory) are handed to the provider's function as they are, and its results written
straight into the caller's result slots: no conversion through Python values.

While the provider runs, its own resource table (and per-store WASI state: config, logs) is the
current one, so its host calls see its identity, not the caller's. A trap in the provider is
returned as the forwarder's error: the caller traps too and the whole store is discarded.

Which provider function a forwarder calls depends on the store: `LinkedStore` (one per store,
registered by the store context's address while the store lives) holds, per forwarder slot, the
function found in that store's provider instance.
"""

from __future__ import annotations

import ctypes
import threading
from typing import Any

from wasmtime import WasmtimeError
from wasmtime import _ffi as ffi
from wasmtime import component as cm

from wasmfleet.host.plugin_api import handle_tables
from wasmfleet.host.runtime import hostfuncs

_VP = ctypes.c_void_p
_func_call = handle_tables.c_function(
    "wasmtime_component_func_call", _VP, _VP, _VP, _VP, ctypes.c_size_t, _VP, ctypes.c_size_t
)
_post_return = handle_tables.c_function("wasmtime_component_func_post_return", _VP, _VP, _VP)
_swap = handle_tables.swap


class LinkedStore:
    """The provider functions of one store, indexed by forwarder slot (see `Slot.index`)."""

    __slots__ = ("_keep", "calls", "funcs", "tables")

    def __init__(self, size: int) -> None:
        self.funcs: list[int] = [0] * size
        """Address of each slot's wasmtime_component_func_t (kept alive in `_keep`)."""
        self.tables: list[handle_tables.ResourceTable | None] = [None] * size
        self.calls = 0
        self._keep: list[Any] = []

    def set(self, index: int, func: Any, table: handle_tables.ResourceTable) -> None:
        self._keep.append(func)
        self.funcs[index] = ctypes.addressof(func)
        self.tables[index] = table


_ACTIVE: dict[int, LinkedStore] = {}
"""Store context address -> its provider functions, while the store lives (`register`)."""


def register(ctx: int, linked: LinkedStore) -> None:
    _ACTIVE[ctx] = linked


def unregister(ctx: int) -> None:
    _ACTIVE.pop(ctx, None)


# Forwarder slots: the callback's `data` is an index here; entries are released by wasmtime's
# finalizer once the linker and every instance made with it are gone (as in hostfuncs).
_SLOTS: list[int | None] = [None]
_FREE: list[int] = []
_LOCK = threading.Lock()


def new_slot(index: int) -> int:
    """A forwarder id for the function at `index` of a workload's `LinkedStore`s."""
    with _LOCK:
        if _FREE:
            data = _FREE.pop()
            _SLOTS[data] = index
        else:
            _SLOTS.append(index)
            data = len(_SLOTS) - 1
    return data


_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_size_t, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t,
    ctypes.c_void_p, ctypes.c_size_t,
)


@_CALLBACK  # type: ignore[untyped-decorator]
def _forward(data: int, ctx: int, ty: int, args: int, nargs: int, results: int, nresults: int) -> int:
    try:
        index = _SLOTS[data]
        linked = _ACTIVE[ctx]
        assert index is not None
        func = linked.funcs[index]
        linked.calls += 1
        previous = _swap(linked.tables[index])
        try:
            err: int | None = _func_call(func, ctx, args, nargs, results, nresults)
            if not err:
                err = _post_return(func, ctx)
        finally:
            _swap(previous)
        # The provider's error (its trap) becomes this host call's error: wasmtime owns it now.
        return err or 0
    except BaseException as exc:  # never unwind into C
        return hostfuncs.fail(exc)


@ctypes.CFUNCTYPE(None, ctypes.c_void_p)  # type: ignore[untyped-decorator]
def _finalize(data: int | None) -> None:
    if data:
        with _LOCK:
            _SLOTS[data] = None
            _FREE.append(data)


_FORWARD: int = ctypes.cast(_forward, ctypes.c_void_p).value or 0
_FINALIZE: int = ctypes.cast(_finalize, ctypes.c_void_p).value or 0


def add_forwarder(instance: cm.LinkerInstance, name: str, slot: int) -> None:
    """Links `name` in `instance` to the provider function of forwarder `slot`."""
    try:
        hostfuncs.link_raw(instance, name, _FORWARD, slot, _FINALIZE)
    except WasmtimeError:
        _finalize(slot)
        raise


def func_struct() -> Any:
    """Storage for one wasmtime_component_func_t (filled by wasmtime_component_instance_get_func)."""
    return ffi.wasmtime_component_func_t()
