"""Registering Python functions and resource types in a component linker, with cached codecs.

wasmtime-py's own `LinkerInstance.add_func` re-reads the function type from C on every call; here
the type is read once (at link time) and compiled either into a program for the C entry
(`_fasthost.c`, when built) or into lift/lower closures for the Python trampoline below (see
`codec`). A Python exception inside a host function becomes a guest trap; the exception is
remembered per thread so the caller can report the real cause (wasmtime-py keeps it in a module
global, not thread-safe). Arguments are owned by wasmtime (it frees them after the callback
returns): never free them here. Entries are released by wasmtime's finalizer (`_finalize`).

Functions of interfaces that suspend (`Interface.suspends_with`) are linked as wasmtime async
host functions (`add_func(..., suspending=True)`, Python entry only): one that answers with a
`Later` suspends the guest's fiber, and wasmtime asks `_continue` on each poll of the call
(`runtime.suspension`) whether the answer is there; the result is lowered then.
"""

from __future__ import annotations

import ctypes
import itertools
import threading
from collections.abc import Callable
from typing import Any

from wasmtime import WasmtimeError
from wasmtime import _ffi as ffi
from wasmtime import component as cm

from wasmfleet.host.plugin_api import handle_tables, store_state
from wasmfleet.host.plugin_api.interfaces import Later
from wasmfleet.host.runtime import codec, fasthost

HostFunc = Callable[..., Any]

_local = threading.local()


class _Entry:
    __slots__ = ("call", "fn", "latin1", "lifts", "lower", "name", "type_ids")

    def __init__(self, name: str, fn: HostFunc, type_ids: handle_tables.TypeIds, latin1: bool) -> None:
        self.name = name
        self.latin1 = latin1
        self.fn = fn
        self.type_ids = type_ids
        self.lifts: list[codec.LiftAt] | None = None
        self.call: Callable[[int, int], Any] | None = None
        self.lower: codec.Lower | None = None

    def compiled(self, ty: int) -> Callable[[int, int], Any]:
        """The call, compiled from the function type at address `ty` (on a first call)."""
        self.compile_type(cm.FuncType._from_ptr(ctypes.cast(ty, _FuncTypePtr), owner=self))  # borrowed
        assert self.call is not None
        return self.call

    def compile_type(self, fty: cm.FuncType) -> None:
        params = [t for _, t in fty.params]
        result = fty.result
        latin1 = self.latin1
        self.lower = codec.compile_lower(result, self.type_ids, latin1) if result is not None else None
        self.lifts = [codec.compile_lift_at(t, latin1) for t in params]
        self.call = _caller(self.fn, self.lifts)


_VAL = ffi.wasmtime_component_val_t


def _caller(fn: HostFunc, lifts: list[codec.LiftAt]) -> Callable[[int, int], Any]:
    """`call(ctx, args_address)`: lifts the arguments and calls `fn`, specialized by arity."""
    size = codec.VAL_SIZE
    if not lifts:
        return lambda ctx, args: fn()
    if len(lifts) == 1:
        (l0,) = lifts
        return lambda ctx, args: fn(l0(ctx, args))
    if len(lifts) == 2:
        l0, l1 = lifts
        return lambda ctx, args: fn(l0(ctx, args), l1(ctx, args + size))
    if len(lifts) == 3:
        l0, l1, l2 = lifts
        return lambda ctx, args: fn(l0(ctx, args), l1(ctx, args + size), l2(ctx, args + 2 * size))
    return lambda ctx, args: fn(*[lift(ctx, args + i * size) for i, lift in enumerate(lifts)])


# Index 0 is never used (a null data pointer); finalized indices are reused.
_ENTRIES: list[_Entry | None] = [None]
_FREE: list[int] = []
_ENTRIES_LOCK = threading.Lock()


def last_exception() -> BaseException | None:
    """The Python exception behind the most recent trap on this thread (then forgotten)."""
    exc: BaseException | None = getattr(_local, "exc", None)
    _local.exc = None
    return exc


def fail(exc: BaseException) -> int:
    """Remembers `exc` as this thread's trap cause; returns a new wasmtime_error_t address for it
    (the value a host-call callback returns to make the guest trap)."""
    return _fail(exc)


def _fail(exc: BaseException) -> int:
    _local.exc = exc
    msg = f"{type(exc).__name__}: {exc}".encode()
    err = ffi.wasmtime_error_new(ctypes.create_string_buffer(msg))
    return ctypes.cast(err, ctypes.c_void_p).value or 0


# The callback receives plain addresses (c_void_p) rather than typed pointers: ctypes then skips
# building pointer objects for every argument of every host call. Binary-compatible with
# wasmtime_component_func_callback_t.
_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_size_t, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t,
    ctypes.c_void_p, ctypes.c_size_t,
)
_FuncTypePtr = ctypes.POINTER(ffi.wasmtime_component_func_type_t)


@_CALLBACK  # type: ignore[untyped-decorator]
def _trampoline(data: int, ctx: int, ty: int, args: int, nargs: int, results: int, nresults: int) -> int:
    entry = _ENTRIES[data]
    assert entry is not None
    try:
        result = (entry.call or entry.compiled(ty))(ctx, args)
        lower = entry.lower
        if lower is not None:
            lower(ctx, result, _VAL.from_address(results))
        return 0
    except BaseException as exc:  # every failure must become a trap, never unwind into C
        return _fail(exc)


# wasmtime_component_func_async_callback_t, with plain addresses as above; the last two are where
# an error may be stored (a wasmtime_error_t*) and the wasmtime_async_continuation_t to fill in.
_ASYNC_CALLBACK = ctypes.CFUNCTYPE(
    None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t,
    ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p, ctypes.POINTER(ffi.wasmtime_async_continuation_t),
)
_CONTINUATION = ffi.wasmtime_func_async_continuation_callback_t
_CONTINUATION_FINALIZER = ctypes.CFUNCTYPE(None, ctypes.c_void_p)


class _Waiting:
    """A host call that answered with a `Later`: what `_continue` needs to lower its answer."""

    __slots__ = ("ctx", "future", "lower", "results", "then")

    def __init__(self, later: Later, lower: codec.Lower | None, ctx: int, results: int) -> None:
        self.future = later.future
        self.then = later.then
        self.lower = lower
        self.ctx = ctx
        self.results = results


_WAITING: dict[int, _Waiting] = {}
"""Host calls waiting on a Later, by a key of their own (the continuation's env). Touched inside a
poll of the suspended call (on its event loop) or when wasmtime drops it."""
_keys = itertools.count(1)


@_ASYNC_CALLBACK  # type: ignore[untyped-decorator]
def _async_trampoline(data: int, ctx: int, ty: int, args: int, nargs: int, results: int, nresults: int,
                      err_ret: int, continuation: Any) -> None:
    entry = _ENTRIES[data]
    assert entry is not None
    cont = continuation.contents
    try:
        result = (entry.call or entry.compiled(ty))(ctx, args)
        if isinstance(result, Later):
            state = store_state.state()
            state.waiting = result.future
            if state.before_wait is not None:
                state.before_wait()  # what the guest wrote goes out while it waits
            key = next(_keys)
            # The results array is wasmtime's, alive until the continuation says it is done.
            _WAITING[key] = _Waiting(result, entry.lower, ctx, results)
            cont.callback, cont.env, cont.finalizer = _CONTINUE, key, _FORGET
            return
        if entry.lower is not None:
            entry.lower(ctx, result, _VAL.from_address(results))
        cont.callback = _READY
    except BaseException as exc:  # every failure must become a trap, never unwind into C
        ctypes.c_void_p.from_address(err_ret).value = _fail(exc)
        cont.callback = _READY


@_CONTINUATION  # type: ignore[untyped-decorator]
def _ready(env: int | None) -> bool:
    return True


@_CONTINUATION  # type: ignore[untyped-decorator]
def _continue(env: int | None) -> bool:
    waiting = _WAITING[env or 0]
    future = waiting.future
    if not future.done():
        return False
    try:
        if waiting.then is None:
            value = future.result()
        else:
            value = waiting.then(future)
            if isinstance(value, Later):  # wait again, on this one
                waiting.future, waiting.then = value.future, value.then
                store_state.state().waiting = value.future
                return False
        if waiting.lower is not None:
            waiting.lower(waiting.ctx, value, _VAL.from_address(waiting.results))
    except BaseException as exc:
        # A continuation cannot fail: the results stay unset, which wasmtime refuses as a type
        # mismatch, so the guest traps, and `last_exception` gives the cause.
        _local.exc = exc
    return True


@_CONTINUATION_FINALIZER  # type: ignore[untyped-decorator]
def _forget(env: int | None) -> None:
    _WAITING.pop(env or 0, None)


_READY = ctypes.cast(_ready, _CONTINUATION)
_CONTINUE = ctypes.cast(_continue, _CONTINUATION)
_FORGET = ctypes.cast(_forget, _CONTINUATION_FINALIZER)

# Callback and finalizer as plain addresses: the same prototype serves the C entry and the
# Python trampoline.
_add_func = ffi.dll._FuncPtr(("wasmtime_component_linker_instance_add_func", ffi.dll))
_add_func.restype = ctypes.c_void_p
_add_func.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_void_p,
                      ctypes.c_void_p]
_add_func_async = ffi.dll._FuncPtr(("wasmtime_component_linker_instance_add_func_async", ffi.dll))
_add_func_async.restype = ctypes.c_void_p
_add_func_async.argtypes = _add_func.argtypes


@ctypes.CFUNCTYPE(None, ctypes.c_void_p)  # type: ignore[untyped-decorator]
def _finalize(data: int | None) -> None:
    # wasmtime calls this once the function's last user is gone (its linker and every instance
    # made with it): release the entry (its codecs hold ~1 KB of closures) and reuse its index.
    # A host links again on every workload start; without this, memory grew with each one.
    if data:
        with _ENTRIES_LOCK:
            _ENTRIES[data] = None
            _FREE.append(data)


@ctypes.CFUNCTYPE(None, ctypes.c_void_p)  # type: ignore[untyped-decorator]
def _keep(data: int | None) -> None:
    return None  # resource destructors carry no data to release


@ffi.wasmtime_component_resource_destructor_t  # type: ignore[untyped-decorator]
def _dtor(data: int, ctx: Any, rep: int) -> int:
    try:
        handle_tables.drop(rep)
        return 0
    except BaseException as exc:
        return _fail(exc)


fasthost.setup(_fail)
if fasthost.MODULE is not None:
    handle_tables.mirror_current_table(fasthost.MODULE.set_table)
_TRAMPOLINE: int = ctypes.cast(_trampoline, ctypes.c_void_p).value or 0
_ASYNC_TRAMPOLINE: int = ctypes.cast(_async_trampoline, ctypes.c_void_p).value or 0
_FINALIZE: int = ctypes.cast(_finalize, ctypes.c_void_p).value or 0


_SIMPLE_ARGS: tuple[tuple[type, int], ...] = (
    (cm.BorrowType, fasthost.A_BORROW), (cm.OwnType, fasthost.A_OWN), (cm.U32, fasthost.A_U32),
    (cm.U64, fasthost.A_U64), (cm.S32, fasthost.A_S32), (cm.S64, fasthost.A_S64), (cm.Bool, fasthost.A_BOOL),
)
_SIMPLE_RESULTS: tuple[tuple[type, int], ...] = (
    (cm.U32, fasthost.R_U32), (cm.U64, fasthost.R_U64), (cm.S32, fasthost.R_S32), (cm.S64, fasthost.R_S64),
    (cm.Bool, fasthost.R_BOOL),
)


def _arg_kind(ty: cm.ValType, latin1: bool) -> int:
    for cls, kind in _SIMPLE_ARGS:
        if isinstance(ty, cls):
            return kind
    if isinstance(ty, cm.String):
        return fasthost.A_LATIN1 if latin1 else fasthost.A_STRING
    if isinstance(ty, cm.ListType) and isinstance(ty.element, cm.U8):
        return fasthost.A_BYTES
    return fasthost.A_PY


def _result_kind(ty: cm.ValType | None, type_ids: handle_tables.TypeIds, latin1: bool) -> tuple[int, int]:
    """(kind, resource type id) of a result, as the C entry lowers it (R_PY: codec.py does)."""
    if ty is None:
        return fasthost.R_NONE, 0
    if isinstance(ty, cm.OwnType):
        return fasthost.R_OWN, type_ids.id_of(ty.ty)
    if isinstance(ty, cm.ResultType):
        ok_t = ty.ok
        if ok_t is None:
            return fasthost.R_RESULT_UNIT, 0
        if isinstance(ok_t, cm.OwnType):
            return fasthost.R_RESULT_OWN, type_ids.id_of(ok_t.ty)
        if isinstance(ok_t, cm.String) and latin1:
            return fasthost.R_RESULT_LATIN1, 0
        return fasthost.R_PY, 0
    for cls, kind in _SIMPLE_RESULTS:
        if isinstance(ty, cls):
            return kind, 0
    if isinstance(ty, cm.String) and not latin1:
        return fasthost.R_STRING, 0
    return fasthost.R_PY, 0


def _register_fast(fn: HostFunc, fty: cm.FuncType, type_ids: handle_tables.TypeIds, latin1: bool) -> int | None:
    """Registers `fn` with the C host-call entry; None when that is not available here."""
    params = [t for _, t in fty.params]
    if fasthost.MODULE is None or len(params) > fasthost.MAX_ARGS:
        return None
    kinds = bytes(_arg_kind(t, latin1) for t in params)
    fallbacks = tuple(codec.compile_lift_at(t, latin1) if k == fasthost.A_PY else None
                      for t, k in zip(params, kinds, strict=True))
    result = fty.result
    result_kind, result_type = _result_kind(result, type_ids, latin1)
    lower_at: Callable[[int, Any, int], None] | None = None
    if result is not None:
        lower = codec.compile_lower(result, type_ids, latin1)

        def lower_at(ctx: int, value: Any, address: int) -> None:
            lower(ctx, value, _VAL.from_address(address))

    index: int = fasthost.MODULE.register(fn, kinds, fallbacks, result_kind, result_type, lower_at)
    return index


def uses_c_entry(fast_host_calls: bool) -> bool:
    """True when functions linked with `fast_host_calls` go through the C entry."""
    return fast_host_calls and fasthost.MODULE is not None


def add_func(instance: cm.LinkerInstance, name: str, fn: HostFunc, type_ids: handle_tables.TypeIds,
             fty: cm.FuncType | None = None, latin1: bool = False, fast: bool = True,
             suspending: bool = False) -> None:
    """Links `fn` as `name`. With the import's type `fty`, its codecs are compiled now (at link
    time) rather than on the first call, keeping that work off the first request, and the call
    goes through the C entry (`_fasthost.c`) when it is built. `latin1`: the function's strings
    are byte lists retyped by `byte_lists` (fn sees and returns bytes). `fast` False keeps the
    function on the Python trampoline (EngineSettings.fast_host_calls). `suspending`: linked as an
    async host function that may answer with a `Later` (see the module doc); its component must
    be instantiated and called with wasmtime's async API (`runtime.suspension`)."""
    index = _register_fast(fn, fty, type_ids, latin1) if fty is not None and fast and not suspending else None
    if index is not None:
        _link(instance, name, fasthost.trampoline_address(), index, fasthost.finalizer_address())
        return
    entry = _Entry(name, fn, type_ids, latin1)
    if fty is not None:
        entry.compile_type(fty)
    with _ENTRIES_LOCK:
        if _FREE:
            idx = _FREE.pop()
            _ENTRIES[idx] = entry
        else:
            _ENTRIES.append(entry)
            idx = len(_ENTRIES) - 1
    if suspending:
        _link(instance, name, _ASYNC_TRAMPOLINE, idx, _FINALIZE, _add_func_async)
    else:
        _link(instance, name, _TRAMPOLINE, idx, _FINALIZE)


def link_raw(instance: cm.LinkerInstance, name: str, callback: int, data: int, finalizer: int) -> None:
    """Links `name` to a C-ABI host-call `callback` (wasmtime_component_func_callback_t) with its
    own `data` and `finalizer` (used by `crossing` for calls between components)."""
    _link(instance, name, callback, data, finalizer)


def _link(instance: cm.LinkerInstance, name: str, callback: int, data: int, finalizer: int,
          add: Any = _add_func) -> None:
    encoded = name.encode()
    err = add(ctypes.cast(instance.ptr(), ctypes.c_void_p), encoded, len(encoded), callback, data, finalizer)
    if err:
        raise WasmtimeError._from_ptr(ctypes.cast(err, ctypes.POINTER(ffi.wasmtime_error_t)))


def add_resource(instance: cm.LinkerInstance, name: str, ty: cm.ResourceType) -> None:
    encoded = name.encode()
    err = ffi.wasmtime_component_linker_instance_add_resource(
        instance.ptr(), ctypes.create_string_buffer(encoded), len(encoded), ty.ptr(), _dtor, 0, _keep
    )
    if err:
        raise WasmtimeError._from_ptr(err)
