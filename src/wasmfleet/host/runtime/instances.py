"""Loaded components, their instances, and one invocation of wasi:http/incoming-handler.handle.

A fresh store + instance per request by default. With pool_size > 0 up to pool_size instances are
kept warm and reused (retired after max_invocations calls, or at once after a trap). Each call
gets an epoch deadline (-> `GuestTrap(deadline=True)`, answered 504) and each store a memory
limit (growth beyond it fails inside the guest, which then traps -> 500).

Calls run on the worker's wasm thread, or inline on its event loop when the guest cannot wait on
anything slow. A guest whose slow imports can all suspend (`linking.Plan.suspending`) is called on
the loop through `runtime.suspension` (`LoadedComponent.start`): it is suspended while a host
call waits, and `invoke` is not used for it.

A component whose spec lists `peers` (the other components of its workload) is loaded with every
component it reaches through its imports (`linking.resolve_workload`): each is a
`crossing.Provider` with its own linker, stores, resource tables and WASI state. Calls into them
go through `crossing` forwarders: a request binds one instance of a provider on its first call to
it, and releases it when the request ends (discarded, or kept warm when that provider's own
pool_size asks). The entry's pool_size pools the entry's instances only.
"""

from __future__ import annotations

import asyncio
import ctypes
import dataclasses
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import wasmtime
from wasmtime import _ffi as ffi

from wasmfleet.bus.messages import ComponentRole
from wasmfleet.host.plugin_api import handle_tables, store_state
from wasmfleet.host.runtime import (
    component_stores,
    cpu_quota,
    crossing,
    engines,
    hostfuncs,
    linking,
    plugin_registry,
    suspension,
)
from wasmfleet.host.runtime.errors import ComponentError, GuestTrap
from wasmfleet.host.runtime.specs import ComponentSpec, RuntimeSettings
from wasmfleet.host.wasi import http, io

# The per-request store/instance calls go through private prototypes taking plain addresses
# (see `handle_tables.c_function`): wasmtime-py's Store/Instance/Func wrappers add several Python
# layers, typed-pointer conversions and a finalizer per request, which is most of the cost of a
# fresh instance on a trivial guest. The store is deleted explicitly in `WarmInstance.close`.
_VP = ctypes.c_void_p
_I64 = ctypes.c_int64
_store_delete = handle_tables.c_function("wasmtime_store_delete", None, _VP)
_set_epoch_deadline = handle_tables.c_function("wasmtime_context_set_epoch_deadline", None, _VP, ctypes.c_uint64)
_instantiate = handle_tables.c_function("wasmtime_component_linker_instantiate", _VP, _VP, _VP, _VP, _VP)
_get_func = handle_tables.c_function("wasmtime_component_instance_get_func", ctypes.c_bool, _VP, _VP, _VP, _VP)
_func_call = handle_tables.c_function(
    "wasmtime_component_func_call", _VP, _VP, _VP, _VP, ctypes.c_size_t, _VP, ctypes.c_size_t
)
_post_return = handle_tables.c_function("wasmtime_component_func_post_return", _VP, _VP, _VP)
_val_delete = handle_tables.c_function("wasmtime_component_val_delete", None, _VP)
_ErrPtr = ctypes.POINTER(ffi.wasmtime_error_t)
_byref = ctypes.byref
_addressof = ctypes.addressof
_Args2 = ffi.wasmtime_component_val_t * 2


def _error(err: int) -> wasmtime.WasmtimeError:
    return wasmtime.WasmtimeError._from_ptr(ctypes.cast(err, _ErrPtr))


def _free_handles(args: Any) -> None:
    """Frees the handle boxes of a call's arguments: a call copies them, the caller still owns them."""
    for arg in args:
        if arg.kind == handle_tables.K_RESOURCE:
            _val_delete(_addressof(arg))


def prepare_file(spec: ComponentSpec, settings: RuntimeSettings) -> Path:
    """Compiles into the cache and checks imports against grants. Blocking: run off the loop."""
    engines.configure(settings.engine)
    artefact = engines.compile_set([spec.wasm_path, *(p.wasm_path for p in spec.peers)], settings.cache_dir)[0]
    component = engines.load(artefact)
    if not spec.peers:  # with peers, LoadedComponent below links them and checks the same
        the_plan = linking.plan(component, spec, plugin_registry.installed().interfaces)
        if the_plan.handler_export is None:
            # A message handler needs no HTTP export (imported here: it builds on this module's peers).
            from wasmfleet.host.runtime import messaging_dispatch

            if messaging_dispatch.handler_export(component) is not None:
                messaging_dispatch.check_handler(spec, settings, artefact)
                return artefact
            raise ComponentError(spec.wasm_path, "does not export wasi:http/incoming-handler, so it cannot serve "
                                 "HTTP (nor wasmcloud:messaging/handler, so it cannot handle messages)")
    # Instantiate once: a component whose start-up traps is refused here, not on every request.
    # A check, not a start: the plugins' workload hooks run when the component is routed.
    loaded = LoadedComponent(spec, settings, artefact, plugin_hooks=False)
    try:
        loaded.warm_up()
    finally:
        # Stores are freed explicitly (WarmInstance.close), not by the garbage collector.
        loaded.close()
    return artefact


@dataclass
class PreparedComponent:
    name: str
    artefact: Path
    role: ComponentRole
    """HTTP (the HTTP entry), MESSAGING_HANDLER (exports wasmcloud:messaging/handler) or LIBRARY
    (anything else: reached only through other components' imports, if at all)."""
    exports: list[str] = field(default_factory=list)
    links: dict[str, str] = field(default_factory=dict)
    """Import name -> name of the component of the workload that provides it."""
    reaches: list[str] = field(default_factory=list)
    """Names of the components instantiated with this one (its imports, transitively)."""


@dataclass
class PreparedWorkload:
    components: list[PreparedComponent]
    http_entry: int | None
    """Index of the first component (manifest order) exporting wasi:http/incoming-handler."""


def prepare_workload(component_specs: list[ComponentSpec], settings: RuntimeSettings) -> PreparedWorkload:
    """Compiles every component of a workload (manifest order) into the cache, checks how they
    link (`linking.resolve_workload`) and each one's host imports, and instantiates every entry
    (HTTP, messaging handler) once with what it reaches, so a start-up trap is refused now.
    Blocking: run off the loop. Raises ComponentError naming the component and the cause."""
    engines.configure(settings.engine)
    known = plugin_registry.installed().interfaces
    artefacts = engines.compile_set([s.wasm_path for s in component_specs], settings.cache_dir)
    loaded = [engines.load(a) for a in artefacts]
    links = linking.resolve_workload([(s.name, c) for s, c in zip(component_specs, loaded, strict=True)], known)
    for index, (spec, component) in enumerate(zip(component_specs, loaded, strict=True)):
        try:
            linking.plan(component, spec, known, links.providers[index])
        except ComponentError as exc:
            raise ComponentError(f"component {spec.name}", f"{exc.path}: {exc.cause}") from None
    http_entry = links.first_exporting(linking.INCOMING_HANDLER)
    prepared = []
    for index, spec in enumerate(component_specs):
        if index == http_entry:
            role = ComponentRole.HTTP
        elif any(e.partition("@")[0] == linking.MESSAGING_HANDLER for e in links.exports[index]):
            role = ComponentRole.MESSAGING_HANDLER
        else:
            role = ComponentRole.LIBRARY
        prepared.append(PreparedComponent(
            name=spec.name, artefact=artefacts[index], role=role, exports=links.exports[index],
            links={iface: links.names[p] for iface, p in links.providers[index].items()},
            reaches=[links.names[i] for i in links.closure(index) if i != index],
        ))
    if http_entry is not None:
        entry = with_peers(component_specs, http_entry)
        check = LoadedComponent(entry, settings, artefacts[http_entry], plugin_hooks=False)
        try:
            check.warm_up()
        finally:
            check.close()
    return PreparedWorkload(prepared, http_entry)


def with_peers(component_specs: list[ComponentSpec], index: int) -> ComponentSpec:
    """The spec of component `index` carrying the workload's other components as its peers."""
    others = tuple(s for i, s in enumerate(component_specs) if i != index)
    return dataclasses.replace(component_specs[index], peers=others)


class WarmInstance:
    """A store (raw wasmtime_store_t address) with one instantiated component and its handler
    (and, when it imports from other components, the provider instances its calls are bound to
    in `linked`)."""

    __slots__ = ("ctx", "epoch_callback", "func", "linked", "store", "table", "uses")

    def __init__(self, store: int, ctx: int, table: handle_tables.ResourceTable, func: Any) -> None:
        self.store = store
        self.ctx = ctx
        self.table = table
        self.linked: crossing.LinkedStore | None = None
        self.func = func  # wasmtime_component_func_t
        self.uses = 0
        self.epoch_callback: Any = None  # a CPU quota's callback, kept alive as long as the store

    def close(self) -> None:
        """Closes the host objects of the store, then frees the store (and its instance)."""
        self.table.clear()
        if self.linked is not None:
            self.linked.release(False)
            crossing.unregister(self.ctx)
        store, self.store = self.store, 0
        if store:
            _store_delete(store)


@dataclass
class Stats:
    requests: int = 0
    traps: int = 0
    timeouts: int = 0
    instantiations: int = 0


def _past_deadline(state: store_state.WasiContext) -> Callable[[], BaseException | None]:
    """For a quota's callback: the trap cause once the store's request deadline has passed."""

    def check() -> BaseException | None:
        if time.monotonic() >= state.deadline:
            return store_state.DeadlineExceeded("request deadline exceeded")
        return None

    return check


class LoadedComponent:
    """A component ready to serve: deserialized from the cache, linked, with its handler located."""

    def __init__(self, spec: ComponentSpec, settings: RuntimeSettings, artefact: Path,
                 plugin_hooks: bool = True) -> None:
        """`plugin_hooks` False: the plugins' workload start/stop are not run (a start-up check)."""
        self.spec = spec
        self.settings = settings
        engines.configure(settings.engine)
        self.component = engines.load(artefact)
        self.tier = engines.tier_of(artefact)
        known = plugin_registry.installed().interfaces
        self.slot_count = 0
        self.members: list[crossing.Provider] = []
        """The linked components this one reaches, providers first (empty when it imports none)."""
        self.targets: list[tuple[crossing.Provider, int]] = []
        crossings: dict[str, dict[str, int]] = {}
        if spec.peers:
            crossings = self._link_peers(known)
        # Suspended calls run on the loop: not with linked components (their calls are made from
        # inside a host call, synchronously) nor under a CPU quota (which sleeps out the period).
        suspend = not spec.peers and spec.cpu_limit_millicores <= 0
        self.plan = linking.plan(self.component, spec, known, crossings, suspend=suspend)
        if self.plan.handler_export is None:
            raise ComponentError(spec.wasm_path, "does not export wasi:http/incoming-handler")
        self.linker, self.type_ids = linking.build_linker(
            self.component, spec, self.plan, known, settings.engine.fast_host_calls, crossings
        )
        iface_idx = self.component.get_export_index(self.plan.handler_export)
        handle_idx = self.component.get_export_index("handle", iface_idx)
        if handle_idx is None:
            raise ComponentError(spec.wasm_path, "exports wasi:http/incoming-handler without `handle`")
        self.handle_idx = handle_idx
        self._handle_idx_addr = component_stores.address(handle_idx)
        self._linker_addr = component_stores.address(self.linker)
        self._component_addr = component_stores.address(self.component)
        self.request_type = self.type_ids.host_type("wasi:http/types#incoming-request")[0]
        self.outparam_type = self.type_ids.host_type("wasi:http/types#response-outparam")[0]
        self.lower_request = handle_tables.lower_own(self.request_type)
        self.lower_outparam = handle_tables.lower_own(self.outparam_type)
        timeout = spec.request_timeout_s or settings.request_timeout_s
        self.deadline_ticks = max(1, math.ceil(timeout / engines.tick_seconds()))
        self.timeout_s = timeout
        self.throttling = cpu_quota.Throttling()
        self.quota = (cpu_quota.Quota(spec.cpu_limit_millicores, self.throttling)
                      if spec.cpu_limit_millicores > 0 else None)
        # Under a quota the deadline is checked by the quota's callback, every few ticks.
        self.epoch_ticks = cpu_quota.CHECK_TICKS if self.quota is not None else self.deadline_ticks
        self.stores = component_stores.StoreRecipe(spec, settings, self.component)  # providers: their own
        self.may_block = self.plan.may_block or any(m.may_block for m in self.members)
        """True when the guest or a component it calls may wait on something slow (outgoing HTTP,
        wasi:blobstore, wasmcloud:messaging's request: `linking.Plan.may_block`): never run it inline."""
        self.suspends = bool(self.plan.suspending)
        """Its slow imports all suspend instead (wasi:keyvalue on NATS): call it with `start`, on
        the loop."""
        self.pool: component_stores.WarmPool[WarmInstance] = component_stores.WarmPool(
            spec.pool_size, spec.max_invocations)
        self.stats = Stats()
        self.counting_lock = threading.Lock()
        self._lifecycle: plugin_registry.Lifecycle | None = None
        if plugin_hooks:
            self._lifecycle = plugin_registry.process_lifecycle(settings.plugin_host)
            self._lifecycle.component_loaded(spec)
            for member in self.members:
                self._lifecycle.component_loaded(member.spec)

    def _link_peers(self, known: dict[str, Any]) -> dict[str, dict[str, int]]:
        """Loads and links the peers this component reaches; returns its own forwarder slots
        (import name -> function -> slot id) and fills `self.members`, providers first."""
        spec, settings = self.spec, self.settings
        specs_ = [spec, *spec.peers]
        components = [self.component] + [
            # Same tier as this component: one store holds them all, so one engine.
            engines.load(engines.compile_to_cache(p.wasm_path, settings.cache_dir, tier=self.tier)) for p in spec.peers
        ]
        links = linking.resolve_workload([(s.name, c) for s, c in zip(specs_, components, strict=True)], known)
        order = links.closure(0)
        members: dict[int, crossing.Provider] = {}
        slots_of: dict[int, dict[str, dict[str, int]]] = {}
        targets = self.targets
        for index in order:  # providers first: their export indices are known before a consumer links
            crossings: dict[str, dict[str, int]] = {}
            for iface, provider in links.providers[index].items():
                provider_component = components[provider]
                iface_idx = provider_component.get_export_index(iface)
                for fname in links.functions[(index, iface)]:
                    func_idx = provider_component.get_export_index(fname, iface_idx)
                    if func_idx is None:
                        raise ComponentError(f"component {links.names[provider]}", f"does not export {iface}#{fname}")
                    crossings.setdefault(iface, {})[fname] = crossing.new_slot(len(targets))
                    targets.append((members[provider], members[provider].provide(func_idx)))
            slots_of[index] = crossings
            if index == 0:
                continue  # the entry itself: linked by the caller
            mspec = specs_[index]
            mplan = linking.plan(components[index], mspec, known, crossings)
            linker, _ = linking.build_linker(
                components[index], mspec, mplan, known, settings.engine.fast_host_calls, crossings
            )
            member = crossing.Provider(mspec, components[index], linker, settings)
            member.may_block = mplan.may_block
            if crossings:
                member.targets = targets
            members[index] = member
        self.members = [members[i] for i in order if i != 0]
        self.slot_count = len(targets)
        return slots_of[0]

    def warm_up(self) -> None:
        """Instantiates once now (off the request path), with each component it reaches: a
        pooled component keeps the instance, and either way the first request finds the
        artefact's pages and wasmtime's lazy state ready. Raises ComponentError when one of them
        cannot even be instantiated."""
        try:
            for member in self.members:
                member.warm_up()
            inst = self._new_instance()
        except GuestTrap as exc:
            raise ComponentError(self.spec.wasm_path, str(exc)) from None
        self.pool.give(inst, healthy=True, used=False)

    def _new_instance(self) -> WarmInstance:
        store, ctx, state = self.stores.new_store()
        table = handle_tables.ResourceTable(state)
        inst = WarmInstance(store, ctx, table, ffi.wasmtime_component_func_t())
        if self.quota is not None:
            state.deadline = time.monotonic() + self.timeout_s  # instantiation is bounded too
            inst.epoch_callback = cpu_quota.callback(_past_deadline(state), self.quota, lambda: state.deadline)
            cpu_quota.install(store, inst.epoch_callback)
        if self.members:  # providers are bound on the first call to each (crossing.LinkedStore)
            inst.linked = crossing.LinkedStore(self.targets, state)
            crossing.register(ctx, inst.linked)
        _set_epoch_deadline(ctx, self.epoch_ticks)
        instance = ffi.wasmtime_component_instance_t()
        if self.plan.suspending:  # its linker has async functions: wasmtime refuses the sync API
            try:
                err = suspension.instantiate(self._linker_addr, ctx, self._component_addr, instance, table)
            except suspension.NotSuspendable as exc:
                inst.close()
                raise GuestTrap(f"instantiation failed: {exc}") from None
        else:
            previous = handle_tables.swap(table)
            try:
                err = _instantiate(self._linker_addr, ctx, self._component_addr, _byref(instance))
            finally:
                handle_tables.swap(previous)
        if err:
            inst.close()
            raise GuestTrap(f"instantiation failed: {linking.describe_error(_error(err))}")
        if not _get_func(_byref(instance), ctx, self._handle_idx_addr, _byref(inst.func)):
            inst.close()
            raise GuestTrap("the handler export is not a function")
        self._count("instantiations")
        return inst

    def _acquire(self) -> WarmInstance:
        return self.pool.take() or self._new_instance()

    def _release(self, inst: WarmInstance, healthy: bool) -> None:
        if inst.linked is not None:
            inst.linked.release(healthy)  # the request is over: so is its use of the providers
        self.pool.give(inst, healthy)

    def invoke(self, request: http.IncomingRequest, sink: http.ResponseSink) -> http.ResponseOutparam:
        """Runs the guest's handler for one request; raises GuestTrap when the guest fails."""
        self._count("requests")
        inst = self._acquire()
        outparam = http.ResponseOutparam(sink)
        state: store_state.WasiContext = inst.table.state
        state.deadline = time.monotonic() + self.timeout_s
        state.before_wait = getattr(sink, "before_wait", None)  # ThreadSink: send before blocking
        body = request.body
        if isinstance(body, io.ChannelInput):
            # Pollers of this store wait on the body channel's condition, which the producer
            # notifies when bytes arrive.
            state.cond = body.channel.cond
        ctx = inst.ctx
        _set_epoch_deadline(ctx, self.epoch_ticks)
        healthy = False
        previous = handle_tables.swap(inst.table)
        args = _Args2()
        try:
            self.lower_request(ctx, request, args[0])
            self.lower_outparam(ctx, outparam, args[1])
            func_raw = _byref(inst.func)
            error = _func_call(func_raw, ctx, args, 2, None, 0)
            if error:
                raise self._trap(_error(error))
            error = _post_return(func_raw, ctx)
            if error:
                raise self._trap(_error(error))
            healthy = True
            return outparam
        finally:
            _free_handles(args)
            handle_tables.swap(previous)
            self._release(inst, healthy)

    def start(self, request: http.IncomingRequest, sink: http.ResponseSink, loop: asyncio.AbstractEventLoop,
              finish: Callable[[http.ResponseOutparam | None, GuestTrap | None], None]) -> None:
        """Runs the handler for one request on `loop` (the calling thread's), suspended while its
        host calls wait (`suspends` components); `finish(outparam, trap)` is called on the loop
        when it ends (maybe before this returns)."""
        self._count("requests")
        try:
            inst = self._acquire()
        except GuestTrap as exc:
            finish(None, exc)
            return
        outparam = http.ResponseOutparam(sink)
        state: store_state.WasiContext = inst.table.state
        state.deadline = time.monotonic() + self.timeout_s
        state.before_wait = getattr(sink, "before_wait", None)
        if isinstance(request.body, io.ChannelInput):
            state.cond = request.body.channel.cond  # as in `invoke`
        ctx = inst.ctx
        _set_epoch_deadline(ctx, self.epoch_ticks)
        args = _Args2()

        def ended(error: int) -> None:
            _free_handles(args)
            self._release(inst, healthy=not error)
            if not error:
                finish(outparam, None)
            elif call.timed_out:
                hostfuncs.last_exception()  # the cancellation: the deadline is the cause
                self._count("timeouts")
                finish(None, GuestTrap(f"request exceeded its {self.timeout_s:g}s deadline", deadline=True))
            else:
                finish(None, self._trap(_error(error)))

        call = suspension.SuspendedCall(loop, inst.table, ended)
        previous = handle_tables.swap(inst.table)
        try:
            self.lower_request(ctx, request, args[0])
            self.lower_outparam(ctx, outparam, args[1])
        except BaseException:
            _free_handles(args)
            self._release(inst, healthy=False)
            raise
        finally:
            handle_tables.swap(previous)
        call.start(_byref(inst.func), ctx, args, 2)

    def _count(self, counter: str) -> None:
        """Counts under the lock: calls of a blocking component run on several threads at once."""
        with self.counting_lock:
            setattr(self.stats, counter, getattr(self.stats, counter) + 1)

    def count_on(self, previous: LoadedComponent) -> None:
        """Continues `previous`'s figures (they are the workload's: a tier-up to optimized code or
        a new version of the route must not reset them). Calls still running on `previous` count
        into the same figures, under the same lock."""
        self.stats, self.counting_lock = previous.stats, previous.counting_lock
        self.throttling = previous.throttling
        if self.quota is not None:
            self.quota.throttling = previous.throttling

    def _trap(self, exc: wasmtime.WasmtimeError) -> GuestTrap:
        cause = hostfuncs.last_exception()
        text = " ".join(str(exc).split())
        if isinstance(cause, store_state.DeadlineExceeded) or "wasm trap: interrupt" in text:
            self._count("timeouts")
            return GuestTrap(f"request exceeded its {self.timeout_s:g}s deadline", deadline=True)
        self._count("traps")
        if isinstance(cause, store_state.GuestExit):
            return GuestTrap(str(cause))
        if cause is not None:
            return GuestTrap(f"{type(cause).__name__}: {cause}")
        # Keep the cause ("wasm trap: ...") and drop wasmtime's backtrace.
        return GuestTrap(text.rsplit("Caused by:", 1)[-1].strip()[:300])

    def close(self) -> None:
        """Frees the idle instances; one still serving a request (the route was replaced, e.g.
        by optimized code) is freed when that request ends (`_release`)."""
        self.pool.close()
        lifecycle, self._lifecycle = self._lifecycle, None
        if lifecycle is not None:
            lifecycle.component_closed(self.spec)
            for member in self.members:
                lifecycle.component_closed(member.spec)
        self.stores.close()
        for member in self.members:
            member.close()
