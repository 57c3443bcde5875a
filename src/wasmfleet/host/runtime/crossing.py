"""Calls from one component of a workload into another (a library it imports from).

A component's import that another component of the workload exports is linked to a forwarder:
a host function whose callback calls the provider's exported function. The two signatures were
checked equal at link time (`linking.resolve_workload`) and resources may not cross, so every
value is plain: the caller's argument values (wasmtime's C representation, already copied out of
the caller's memory) are handed to the provider's function as they are, and its results written
straight into the caller's result slots. Because nothing in them belongs to a store, the provider
runs in a store of its own (as upstream's linked calls do for plain-value signatures).

Instances of a provider (`Provider`), and what that keeps of upstream's semantics:
- Each store that calls providers (the entry's, or a provider's own) has a `LinkedStore`,
  registered by its store context's address. The first call from it to a provider binds one
  provider instance for the rest of that store's use (one request of the entry): every later call
  of the same request reaches the same instance, so the library's state lives exactly as long as
  the request, as when the whole set shared one store. A request that never calls a provider
  never instantiates it.
- At the end of the request the bound instances are released: a provider whose own poolSize is
  0 (the default) is discarded, so its state never outlives a request; a provider with poolSize
  N > 0 keeps up to N warm instances, reused by later requests (retired after maxInvocations
  calls). That is the provider's own opt-in, as upstream decides per component: the entry's
  poolSize pools only the entry, never a library that did not ask for it.
- A trap or a deadline inside a provider fails the caller's call (its error becomes the
  forwarder's error) and retires the provider's instance, never pooled again.
- Each provider store gets the caller's remaining deadline (epoch ticks, and the deadline host
  calls check) and the provider's own memory limit.

While the provider runs, its own resource table (and per-store WASI state: config, logs) is the
current one, so its host calls see its identity, not the caller's.
"""

from __future__ import annotations

import ctypes
import math
import threading
import time
from typing import Any

import wasmtime
from wasmtime import WasmtimeError
from wasmtime import _ffi as ffi
from wasmtime import component as cm

from wasmfleet.host.plugin_api import handle_tables, store_state
from wasmfleet.host.runtime import component_stores, engines, hostfuncs
from wasmfleet.host.runtime.errors import GuestTrap
from wasmfleet.host.runtime.specs import ComponentSpec, RuntimeSettings

_VP = ctypes.c_void_p
_I64 = ctypes.c_int64
_func_call = handle_tables.c_function(
    "wasmtime_component_func_call", _VP, _VP, _VP, _VP, ctypes.c_size_t, _VP, ctypes.c_size_t
)
_post_return = handle_tables.c_function("wasmtime_component_func_post_return", _VP, _VP, _VP)
_store_delete = handle_tables.c_function("wasmtime_store_delete", None, _VP)
_set_epoch_deadline = handle_tables.c_function("wasmtime_context_set_epoch_deadline", None, _VP, ctypes.c_uint64)
_instantiate = handle_tables.c_function("wasmtime_component_linker_instantiate", _VP, _VP, _VP, _VP, _VP)
_get_func = handle_tables.c_function("wasmtime_component_instance_get_func", ctypes.c_bool, _VP, _VP, _VP, _VP)
_ErrPtr = ctypes.POINTER(ffi.wasmtime_error_t)
_swap = handle_tables.swap


def _error_text(err: int) -> str:
    # Imported here: linking imports this module for its forwarders.
    from wasmfleet.host.runtime import linking

    return linking.describe_error(wasmtime.WasmtimeError._from_ptr(ctypes.cast(err, _ErrPtr)))


class ProviderInstance:
    """One instance of a provider in a store of its own, with the functions it provides."""

    __slots__ = ("_keep", "ctx", "funcs", "healthy", "linked", "store", "table", "uses")

    def __init__(self, store: int, ctx: int, table: handle_tables.ResourceTable) -> None:
        self.store, self.ctx, self.table = store, ctx, table
        self.funcs: list[int] = []
        """Address of each provided function's wasmtime_component_func_t (kept alive in `_keep`)."""
        self._keep: list[Any] = []
        self.linked: LinkedStore | None = None
        """This instance's own calls into further providers (None when it imports none)."""
        self.healthy = True
        self.uses = 0

    def close(self) -> None:
        if self.linked is not None:
            self.linked.release(False)
            unregister(self.ctx)
        self.table.clear()
        store, self.store = self.store, 0
        if store:
            _store_delete(store)


class Provider:
    """A component of a workload that others call through their imports: how to make its
    instances, and its warm ones when its poolSize asks (see the module docstring)."""

    def __init__(self, spec: ComponentSpec, component: cm.Component, linker: cm.Linker,
                 settings: RuntimeSettings) -> None:
        self.spec = spec
        self.component = component
        self.linker = linker
        self._component_addr = component_stores.address(component)
        self._linker_addr = component_stores.address(linker)
        self.stores = component_stores.StoreRecipe(spec, settings, component)
        self.provides: list[Any] = []
        """Export index of each function callers reach (position = `Target.position`)."""
        self.targets: list[tuple[Provider, int]] | None = None
        """The workload's forwarder targets, when this provider itself imports from others."""
        self.may_block = False
        """Its own imports may wait on something slow (`linking.Plan.may_block`)."""
        self.pool: component_stores.WarmPool[ProviderInstance] = component_stores.WarmPool(
            spec.pool_size, spec.max_invocations)
        self.lock = threading.Lock()
        self.instantiations = 0

    def provide(self, func_idx: Any) -> int:
        """Registers an exported function callers reach; returns its position in `funcs`."""
        self.provides.append(func_idx)
        return len(self.provides) - 1

    def acquire(self, deadline: float) -> ProviderInstance:
        """A warm instance (poolSize > 0) or a new one, with `deadline` (time.monotonic) as its
        call deadline. Raises GuestTrap when instantiating fails (a trap in its start-up)."""
        inst = self.pool.take() or self._new_instance(deadline)
        inst.table.state.deadline = deadline
        _set_epoch_deadline(inst.ctx, _ticks_until(deadline))
        return inst

    def release(self, inst: ProviderInstance, healthy: bool, used: bool = True) -> None:
        if inst.linked is not None:
            inst.linked.release(healthy)
        self.pool.give(inst, healthy and inst.healthy, used)

    def _new_instance(self, deadline: float) -> ProviderInstance:
        spec = self.spec
        store, ctx, state = self.stores.new_store(deadline)
        inst = ProviderInstance(store, ctx, handle_tables.ResourceTable(state))
        if self.targets is not None:
            inst.linked = LinkedStore(self.targets, state)
            register(ctx, inst.linked)
        _set_epoch_deadline(ctx, _ticks_until(deadline))
        instance = ffi.wasmtime_component_instance_t()
        previous = _swap(inst.table)
        try:
            err = _instantiate(self._linker_addr, ctx, self._component_addr, ctypes.byref(instance))
        finally:
            _swap(previous)
        if err:
            inst.close()
            raise GuestTrap(f"instantiating component {spec.name} failed: {_error_text(err)}")
        for func_idx in self.provides:
            func = ffi.wasmtime_component_func_t()
            if not _get_func(ctypes.byref(instance), ctx, component_stores.address(func_idx), ctypes.byref(func)):
                inst.close()
                raise GuestTrap(f"component {spec.name}: a linked export is not a function")
            inst._keep.append(func)
            inst.funcs.append(ctypes.addressof(func))
        with self.lock:
            self.instantiations += 1
        return inst

    def warm_up(self) -> None:
        """Instantiates once (a start-up trap is refused by the caller); a pooled provider keeps it."""
        self.release(self._new_instance(time.monotonic() + 60), True, used=False)

    def close(self) -> None:
        """Frees the idle instances; one bound to a call in flight is freed when released."""
        self.pool.close()
        self.stores.close()


def _ticks_until(deadline: float) -> int:
    remaining = deadline - time.monotonic()
    if remaining == math.inf:
        return 1 << 40
    return max(1, math.ceil(remaining / engines.tick_seconds()))


class LinkedStore:
    """The provider instances one store's calls are bound to (see the module docstring)."""

    __slots__ = ("bound", "calls", "state", "targets")

    def __init__(self, targets: list[tuple[Provider, int]], state: store_state.WasiContext) -> None:
        self.targets = targets
        """Forwarder index -> (provider, position of the function in its instances' `funcs`)."""
        self.state = state
        """The calling store's WASI state: its deadline is what a bound provider gets."""
        self.bound: dict[Provider, ProviderInstance] = {}
        self.calls = 0

    def instance(self, provider: Provider) -> ProviderInstance:
        inst = self.bound.get(provider)
        if inst is None:
            inst = self.bound[provider] = provider.acquire(self.state.deadline)
        return inst

    def release(self, healthy: bool) -> None:
        """Ends the use of the bound instances (the calling store's request is over)."""
        bound, self.bound = self.bound, {}
        for provider, inst in bound.items():
            provider.release(inst, healthy)


_ACTIVE: dict[int, LinkedStore] = {}
"""Store context address -> the provider instances its calls go to, while the store lives."""


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
    """A forwarder id for target `index` of a workload's `LinkedStore.targets`."""
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
        assert index is not None
        linked = _ACTIVE[ctx]
        provider, position = linked.targets[index]
        inst = linked.instance(provider)
        linked.calls += 1
        func = inst.funcs[position]
        callee = inst.ctx
        previous = _swap(inst.table)
        try:
            err: int | None = _func_call(func, callee, args, nargs, results, nresults)
            if not err:
                err = _post_return(func, callee)
        finally:
            _swap(previous)
        if err:
            inst.healthy = False  # trapped (or ran out of time): never reused
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
