"""Host-side resources: the per-store table of Python objects behind guest handles.

A guest holds `own`/`borrow` handles; wasmtime hands the host a `rep` (u32) for them. Each store
has a `ResourceTable` mapping rep -> Python object. wasmtime's StoreContext carries no user data
(wasm-host-notes.md, pitfall 4), so the table of the store currently running on this thread is
found through a thread-local set by the code that calls into the guest.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

from wasmtime import WasmtimeError
from wasmtime import _ffi as ffi
from wasmtime import component as cm

_local = threading.local()
_fast_set_table: Callable[[ResourceTable | None, dict[int, Any] | None], None] | None = None


def mirror_current_table(set_table: Callable[[ResourceTable | None, dict[int, Any] | None], None]) -> None:
    """Also hands every table made current to `set_table` (the runtime's C host-call entry keeps
    its own thread-local copy). Installed once by the runtime; this module knows nothing of C."""
    global _fast_set_table
    _fast_set_table = set_table


def _raw(name: str, restype: Any, *argtypes: Any) -> Any:
    """A private prototype of a C API function taking plain addresses (c_void_p).

    Typed pointer arguments make ctypes check and convert each argument; handing it integers is
    several times cheaper, and these run several times per host call. A fresh function object is
    made so wasmtime-py's own (typed) prototype stays untouched.
    """
    fn = ffi.dll._FuncPtr((name, ffi.dll))
    fn.restype = restype
    fn.argtypes = list(argtypes)
    return fn


c_function = _raw
"""Public name of `_raw`, for the other runtime modules' per-request C calls."""

_VP = ctypes.c_void_p
_any_to_host = _raw("wasmtime_component_resource_any_to_host", _VP, _VP, _VP, _VP)
_host_to_any = _raw("wasmtime_component_resource_host_to_any", _VP, _VP, _VP, _VP)
_host_new = _raw("wasmtime_component_resource_host_new", _VP, ctypes.c_bool, ctypes.c_uint32, ctypes.c_uint32)
_host_rep = _raw("wasmtime_component_resource_host_rep", ctypes.c_uint32, _VP)
_host_delete = _raw("wasmtime_component_resource_host_delete", None, _VP)
_ErrPtr = ctypes.POINTER(ffi.wasmtime_error_t)
_byref = ctypes.byref
_addressof = ctypes.addressof
_vp_at = _VP.from_address
_PAYLOAD = ffi.wasmtime_component_val_t.of.offset
K_RESOURCE = 21  # WASMTIME_COMPONENT_RESOURCE


def _error(err: int) -> WasmtimeError:
    return WasmtimeError._from_ptr(ctypes.cast(err, _ErrPtr))


class ResourceTable:
    """rep -> object for one store. Reps start at 1 and are never reused within a store."""

    __slots__ = ("_next", "objects", "out", "out_ref", "state")

    def __init__(self, state: Any = None) -> None:
        self.objects: dict[int, Any] = {}
        self._next = 1
        self.state = state  # the per-store WASI context (plugin_api.store_state.WasiContext)
        # Out-parameter for handle conversions: one per table (a store runs on one thread at a
        # time) instead of a fresh c_void_p + byref on every handle a host call sees.
        self.out = _VP()
        self.out_ref = _byref(self.out)

    def add(self, obj: Any) -> int:
        rep = self._next
        self._next = rep + 1
        self.objects[rep] = obj
        return rep

    def clear(self) -> None:
        for obj in list(self.objects.values()):
            close = getattr(obj, "close", None)
            if close is not None:
                with suppress(Exception):
                    close()
        self.objects.clear()


def current() -> ResourceTable:
    table: ResourceTable | None = getattr(_local, "table", None)
    if table is None:
        raise WasmtimeError("host call outside of a guest invocation")
    return table


@contextmanager
def active(table: ResourceTable) -> Iterator[None]:
    """Makes `table` the current store's table on this thread for the duration of a guest call."""
    previous = swap(table)
    try:
        yield
    finally:
        swap(previous)


def swap(table: ResourceTable | None) -> ResourceTable | None:
    """Makes `table` current on this thread; returns the previous one (to restore afterwards).
    The per-request form of `active`, without a generator-based context manager."""
    previous: ResourceTable | None = getattr(_local, "table", None)
    _local.table = table
    if _fast_set_table is not None:  # the C host-call entry keeps its own thread-local copy
        _fast_set_table(table, table.objects if table is not None else None)
    return previous


def _rep_at(table: ResourceTable, ctx: int, address: int) -> int:
    """ctx: the store context's address; address: a val holding a resource handle."""
    err = _any_to_host(ctx, _vp_at(address + _PAYLOAD).value, table.out_ref)
    if err:
        raise _error(err)
    host = table.out.value
    rep: int = _host_rep(host)
    _host_delete(host)
    return rep


def lift_own_at(ctx: Any, address: int) -> Any:
    """An owned handle moves to the host: the object leaves the table (the guest cannot drop it)."""
    table: ResourceTable = _local.table
    obj = table.objects.pop(_rep_at(table, ctx, address), None)
    if obj is None:
        raise WasmtimeError("unknown resource handle")
    return obj


def lift_borrow_at(ctx: Any, address: int) -> Any:
    table: ResourceTable = _local.table
    obj = table.objects.get(_rep_at(table, ctx, address))
    if obj is None:
        raise WasmtimeError("unknown resource handle")
    return obj


def lift_own(ctx: Any, v: Any) -> Any:
    return lift_own_at(ctx, _addressof(v))


def lift_borrow(ctx: Any, v: Any) -> Any:
    return lift_borrow_at(ctx, _addressof(v))


def lower_own(type_id: int) -> Callable[[Any, Any, Any], None]:
    def lower(ctx: Any, obj: Any, v: Any) -> None:
        table: ResourceTable = _local.table
        host = _host_new(True, table.add(obj), type_id)
        err = _host_to_any(ctx, host, table.out_ref)
        _host_delete(host)
        if err:
            raise _error(err)
        _vp_at(_addressof(v) + _PAYLOAD).value = table.out.value
        v.kind = K_RESOURCE

    return lower


def drop(rep: int) -> None:
    """Destructor body: the guest dropped its handle."""
    table: ResourceTable | None = getattr(_local, "table", None)
    if table is None:
        return
    obj = table.objects.pop(rep, None)
    close = getattr(obj, "close", None)
    if close is not None:
        close()


class TypeIds:
    """Host resource type ids of one linker, and lookup of a component-side type by equality."""

    def __init__(self) -> None:
        self._by_key: dict[str, int] = {}
        self._host: dict[int, cm.ResourceType] = {}
        self._types: list[tuple[int, cm.ResourceType]] = []

    def host_type(self, key: str) -> tuple[int, cm.ResourceType]:
        rid = self._by_key.get(key)
        if rid is None:
            rid = len(self._by_key) + 1
            self._by_key[key] = rid
            self._host[rid] = cm.ResourceType.host(rid)
            self._types.append((rid, self._host[rid]))
        return rid, self._host[rid]

    def alias(self, ty: cm.ResourceType, rid: int) -> None:
        """Records a component-side resource type (from the component's import types) as `rid`."""
        self._types.append((rid, ty))

    def id_of(self, ty: cm.ResourceType) -> int:
        for rid, known in self._types:
            if known == ty:
                return rid
        raise WasmtimeError("a function returns a resource type this host does not define")
