"""Delivery of NATS messages to components exporting wasmcloud:messaging/handler@0.2.0.

One `MessagingDispatcher` per serving process (the host, or each `--workers` process). For each
subscribed component it holds a `HandlerComponent` (fresh store + instance per message, or a warm
one when poolSize asks, as HTTP does) and one NATS subscription per subject, on the process's
`MessagingBus` (plugins/wasmcloud_messaging.py).

Bounds, per process (the parent splits the host's bounds across its worker processes, see
`split_bound`): at most `max_in_flight` messages of a component and `host_slots` in total are
admitted at once. They run on `handler_threads.HandlerThreads`: about one thread per CPU while
handlers keep up, one more each time the oldest waiting message has waited 2 ms (a handler
waiting on NATS or spinning), up to `host_slots` threads (wasmtime releases the GIL while wasm
runs). A message
waits for a slot at most `admission_wait` on the NATS loop; meanwhile nats-py keeps at most
PENDING_MSGS_LIMIT more in the subscription's buffer (beyond: dropped as a slow consumer). So a
flood costs bounded memory and threads, and every dropped message is counted.

A handler that cannot wait on anything (no consumer.request, no interface declared blocking:
`linking.Plan.may_block`) and whose last INLINE_AFTER calls each took at most QUICK_CPU_S of CPU
runs inline on the NATS loop instead, as a quick HTTP guest does: no hand-over to a thread and
back, which cost a third of the rate of a trivial handler. One slower call sends it back to the
threads until it is quick again. The price: a call that turns slow while inline (a spin on one
input) holds this process's other deliveries, and their admission_wait timers, until it ends or
its deadline interrupts it.

A handler that traps or runs past its deadline: the message is dropped and counted, its instance
retired (never pooled), and the next message gets another. An `err` result is counted as failed.
The host never replies on the component's behalf.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import math
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import wasmtime
from wasmtime import _ffi as ffi
from wasmtime import component as cm

from wasmfleet.host.plugin_api import handle_tables, store_state
from wasmfleet.host.plugins import messaging_config
from wasmfleet.host.plugins.wasmcloud_messaging import MessagingBus, MessagingUnavailable, data_connection, open_bus
from wasmfleet.host.runtime import codec, component_stores, engines, hostfuncs, linking, owned_loading, plugin_registry
from wasmfleet.host.runtime.errors import ComponentError, GuestTrap, RuntimeUnavailable
from wasmfleet.host.runtime.handler_threads import HandlerThreads
from wasmfleet.host.runtime.specs import ComponentSpec, RuntimeSettings

log = logging.getLogger(__name__)

HANDLER_EXPORT = "wasmcloud:messaging/handler"
HANDLER_FUNC = "handle-message"

INLINE_AFTER = 32
"""Quick calls in a row after which a handler that cannot wait on anything runs inline."""
QUICK_CPU_S = 0.002
"""A call taking more CPU than this sends its handler back to the handler threads."""

_VP = ctypes.c_void_p
_I64 = ctypes.c_int64
# Calls that run no guest code keep the GIL (see `component_stores.quick_c_function`).
_quick = component_stores.quick_c_function
_store_delete = _quick("wasmtime_store_delete", None, _VP)
_set_epoch_deadline = _quick("wasmtime_context_set_epoch_deadline", None, _VP, ctypes.c_uint64)
_instantiate = handle_tables.c_function("wasmtime_component_linker_instantiate", _VP, _VP, _VP, _VP, _VP)
_get_func = _quick("wasmtime_component_instance_get_func", ctypes.c_bool, _VP, _VP, _VP, _VP)
_func_call = handle_tables.c_function(
    "wasmtime_component_func_call", _VP, _VP, _VP, _VP, ctypes.c_size_t, _VP, ctypes.c_size_t
)
_post_return = handle_tables.c_function("wasmtime_component_func_post_return", _VP, _VP, _VP)
_val_delete = _quick("wasmtime_component_val_delete", None, _VP)
_record_new_uninit = _quick("wasmtime_component_valrecord_new_uninit", None, _VP, ctypes.c_size_t)
_byte_vec_new = _quick("wasm_byte_vec_new", None, _VP, ctypes.c_size_t, ctypes.c_char_p)
_list_new_uninit = _quick("wasmtime_component_vallist_new_uninit", None, _VP, ctypes.c_size_t)
_val_new = _quick("wasmtime_component_val_new", _VP, _VP)
_VAL_SIZE = ctypes.sizeof(ffi.wasmtime_component_val_t)
_PAYLOAD = ffi.wasmtime_component_val_t.of.offset
_ENTRY_SIZE = ctypes.sizeof(ffi.wasmtime_component_valrecord_entry_t)
_ENTRY_VAL = ffi.wasmtime_component_valrecord_entry_t.val.offset
_LIST_DATA: int = ffi.wasmtime_component_vallist_t.data.offset  # type: ignore[attr-defined]
_RECORD_DATA: int = ffi.wasmtime_component_valrecord_t.data.offset  # type: ignore[attr-defined]
_kind_at = ctypes.c_uint8.from_address
_ptr_at = ctypes.c_void_p.from_address
_ErrPtr = ctypes.POINTER(ffi.wasmtime_error_t)


def _error(err: int) -> wasmtime.WasmtimeError:
    return wasmtime.WasmtimeError._from_ptr(ctypes.cast(err, _ErrPtr))


class _MessageLowering:
    """Lowers (subject, body, reply-to) into the handler's broker-message record
    {subject: string, body: list<u8>, reply-to: option<string>} with GIL-holding C calls and
    direct writes: the generic codec goes through wasmtime-py's typed wrappers, a Python frame
    and a GIL release per allocation, which was a fifth of a trivial handler's cost."""

    def __init__(self, names: list[bytes]) -> None:
        self.names = names

    @staticmethod
    def fits(ty: cm.ValType) -> bool:
        if not isinstance(ty, cm.RecordType) or len(ty.fields) != 3:
            return False
        kinds = [t for _, t in ty.fields]
        return (isinstance(kinds[0], cm.String) and isinstance(kinds[1], cm.ListType)
                and isinstance(kinds[1].element, cm.U8) and isinstance(kinds[2], cm.OptionType)
                and isinstance(kinds[2].payload, cm.String))

    def __call__(self, ctx: int, msg: tuple[str, bytes, str | None], arg: Any) -> None:
        subject, body, reply_to = msg
        at = ctypes.addressof(arg)
        _kind_at(at).value = codec.K_RECORD
        _record_new_uninit(at + _PAYLOAD, 3)
        entries = _ptr_at(at + _PAYLOAD + _RECORD_DATA).value
        assert entries
        for i, name in enumerate(self.names):
            _byte_vec_new(entries + i * _ENTRY_SIZE, len(name), name)
        val = entries + _ENTRY_VAL
        text = subject.encode()
        _kind_at(val).value = codec.K_STRING
        _byte_vec_new(val + _PAYLOAD, len(text), text)
        val += _ENTRY_SIZE
        _kind_at(val).value = codec.K_LIST
        n = len(body)
        _list_new_uninit(val + _PAYLOAD, n)
        if n:
            data = _ptr_at(val + _PAYLOAD + _LIST_DATA).value
            assert data
            view = memoryview((ctypes.c_char * (n * _VAL_SIZE)).from_address(data)).cast("B")
            view[0::_VAL_SIZE] = _KIND_U8 * n
            view[_PAYLOAD::_VAL_SIZE] = body
        val += _ENTRY_SIZE
        _kind_at(val).value = codec.K_OPTION
        boxed = None
        if reply_to is not None:
            some = ffi.wasmtime_component_val_t()
            some.kind = codec.K_STRING
            text = reply_to.encode()
            _byte_vec_new(ctypes.addressof(some) + _PAYLOAD, len(text), text)
            boxed = _val_new(ctypes.addressof(some))  # moves `some` to the heap; the record owns it
        _ptr_at(val + _PAYLOAD).value = boxed


_KIND_U8 = bytes((codec.K_U8,))


def handler_export(component: cm.Component) -> str | None:
    """The versioned name of the component's wasmcloud:messaging/handler export, if any."""
    names = component.type.exports(engines.engine_of(component))
    return next((n for n in names if n.startswith(HANDLER_EXPORT + "@0.2.")), None)


def split_bound(bound: int, workers: int) -> list[int]:
    """`bound` slots spread over `workers` processes, so their sum never exceeds it (a process
    given 0 does not subscribe)."""
    workers = max(1, workers)
    return [bound // workers + (1 if i < bound % workers else 0) for i in range(workers)]


class _Instance:
    __slots__ = ("ctx", "func", "store", "table", "uses")

    def __init__(self, store: int, ctx: int, table: handle_tables.ResourceTable) -> None:
        self.store, self.ctx, self.table = store, ctx, table
        self.func = ffi.wasmtime_component_func_t()
        self.uses = 0

    def close(self) -> None:
        self.table.clear()
        store, self.store = self.store, 0
        if store:
            _store_delete(store)


class HandlerError(Exception):
    """The handler returned err(text)."""


class HandlerComponent:
    """A component whose wasmcloud:messaging/handler the host calls, one message per call."""

    def __init__(self, spec: ComponentSpec, settings: RuntimeSettings, artefact: Path,
                 timeout_s: float = 0.0, plugin_hooks: bool = True) -> None:
        self.spec = spec
        engines.configure(settings.engine)
        self.component = engines.load(artefact)
        known = plugin_registry.installed().interfaces
        plan = linking.plan(self.component, spec, known)
        export = handler_export(self.component)
        if export is None:
            raise ComponentError(spec.wasm_path, f"does not export {HANDLER_EXPORT}@0.2.0")
        self.linker, type_ids = linking.build_linker(self.component, spec, plan, known,
                                                     settings.engine.fast_host_calls)
        self.may_block = plan.may_block
        """It may wait on something slow (a request, a blocking interface): run on a handler thread."""
        iface_idx = self.component.get_export_index(export)
        func_idx = self.component.get_export_index(HANDLER_FUNC, iface_idx)
        if func_idx is None:
            raise ComponentError(spec.wasm_path, f"exports {export} without {HANDLER_FUNC}")
        self._func_idx = func_idx
        iface_type = self.component.type.exports(engines.engine_of(self.component))[export].ty
        assert isinstance(iface_type, cm.ComponentInstanceType)
        fty = iface_type.exports(engines.engine_of(self.component))[HANDLER_FUNC].ty
        assert isinstance(fty, cm.FuncType)
        msg_type = fty.params[0][1]
        self._lower_msg: Any = (_MessageLowering([name.encode() for name, _ in msg_type.fields])  # type: ignore[attr-defined]
                                if _MessageLowering.fits(msg_type) else codec.compile_lower(msg_type, type_ids))
        assert fty.result is not None
        self._lift_result = codec.compile_lift(fty.result)
        self.timeout_s = timeout_s or spec.request_timeout_s or settings.request_timeout_s
        self.deadline_ticks = max(1, math.ceil(self.timeout_s / engines.tick_seconds()))
        self.stores = component_stores.StoreRecipe(spec, settings, self.component)
        self.pool: component_stores.WarmPool[_Instance] = component_stores.WarmPool(
            spec.pool_size, spec.max_invocations)
        self._linker_addr = component_stores.address(self.linker)
        self._component_addr = component_stores.address(self.component)
        self._func_idx_addr = component_stores.address(func_idx)
        self._lifecycle: plugin_registry.Lifecycle | None = None
        if plugin_hooks:
            self._lifecycle = plugin_registry.process_lifecycle(settings.plugin_host)
            self._lifecycle.component_loaded(spec)

    def warm_up(self) -> None:
        """Instantiates once (a component whose start-up traps is refused here)."""
        try:
            inst = self._new_instance()
        except GuestTrap as exc:
            raise ComponentError(self.spec.wasm_path, str(exc)) from None
        self.pool.give(inst, healthy=True, used=False)

    def _new_instance(self) -> _Instance:
        store, ctx, state = self.stores.new_store()
        inst = _Instance(store, ctx, handle_tables.ResourceTable(state))
        _set_epoch_deadline(ctx, self.deadline_ticks)
        instance = ffi.wasmtime_component_instance_t()
        previous = handle_tables.swap(inst.table)
        try:
            error = _instantiate(self._linker_addr, ctx, self._component_addr, ctypes.byref(instance))
        finally:
            handle_tables.swap(previous)
        if error:
            inst.close()
            raise GuestTrap(f"instantiation failed: {linking.describe_error(_error(error))}")
        if not _get_func(ctypes.byref(instance), ctx, self._func_idx_addr, ctypes.byref(inst.func)):
            inst.close()
            raise GuestTrap("the handle-message export is not a function")
        return inst


    def invoke(self, subject: str, body: bytes, reply_to: str | None) -> None:
        """Runs handle-message once. Raises GuestTrap (trap, deadline) or HandlerError (err result)."""
        inst = self.pool.take() or self._new_instance()
        state: store_state.WasiContext = inst.table.state
        state.deadline = time.monotonic() + self.timeout_s
        ctx = inst.ctx
        _set_epoch_deadline(ctx, self.deadline_ticks)
        healthy = False
        previous = handle_tables.swap(inst.table)
        arg = ffi.wasmtime_component_val_t()
        result = ffi.wasmtime_component_val_t()
        lowered = called = False
        try:
            self._lower_msg(ctx, (subject, body, reply_to), arg)
            lowered = True
            func = ctypes.byref(inst.func)
            error = _func_call(func, ctx, ctypes.byref(arg), 1, ctypes.byref(result), 1)
            if error:
                raise self._trap(_error(error))
            called = True
            outcome = self._lift_result(ctx, result)
            error = _post_return(func, ctx)
            if error:
                raise self._trap(_error(error))
            healthy = True
            if outcome[0] == "err":
                raise HandlerError(str(outcome[1]))
        finally:
            if lowered:
                _val_delete(ctypes.addressof(arg))
            if called:
                _val_delete(ctypes.addressof(result))
            handle_tables.swap(previous)
            self.pool.give(inst, healthy)

    def _trap(self, exc: wasmtime.WasmtimeError) -> GuestTrap:
        cause = hostfuncs.last_exception()
        text = " ".join(str(exc).split())
        if isinstance(cause, store_state.DeadlineExceeded) or "wasm trap: interrupt" in text:
            return GuestTrap(f"handler exceeded its {self.timeout_s:g}s deadline", deadline=True)
        if cause is not None:
            return GuestTrap(f"{type(cause).__name__}: {cause}")
        return GuestTrap(text.rsplit("Caused by:", 1)[-1].strip()[:300])

    def close(self) -> None:
        self.pool.close()
        lifecycle, self._lifecycle = self._lifecycle, None
        if lifecycle is not None:
            lifecycle.component_closed(self.spec)
        self.stores.close()


def check_handler(spec: ComponentSpec, settings: RuntimeSettings, artefact: Path) -> None:
    """Links and instantiates once (no plugin hooks): ComponentError when it cannot handle messages."""
    handler = HandlerComponent(spec, settings, artefact, plugin_hooks=False)
    try:
        handler.warm_up()
    finally:
        handler.close()


@dataclass
class Counters:
    received: int = 0
    handled: int = 0
    failed: int = 0
    """Handled, but the handler returned err."""
    dropped_admission: int = 0
    dropped_trap: int = 0
    dropped_deadline: int = 0
    inflight: int = 0
    inline: int = 0
    """Of the messages handled (or failed, or dropped by the handler), those run inline on the loop."""

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass
class Subscribed:
    """One component's subscriptions in this process."""

    workload_id: str
    handler: HandlerComponent
    plan: messaging_config.Subscriptions
    slots: asyncio.Semaphore
    subs: list[Any] = field(default_factory=list)
    counters: Counters = field(default_factory=Counters)
    idle: asyncio.Event = field(default_factory=asyncio.Event)
    quick_streak: int = 0
    """Consecutive calls that took at most QUICK_CPU_S of CPU (capped at INLINE_AFTER)."""

    def runs_inline(self) -> bool:
        return self.quick_streak >= INLINE_AFTER and not self.handler.may_block


class MessagingDispatcher:
    """Subscriptions and bounded delivery for one serving process."""

    def __init__(self, settings: RuntimeSettings) -> None:
        self.settings = settings
        self._by_workload: dict[str, list[Subscribed]] = {}
        self._bus: MessagingBus | None = None
        self._host_slots: asyncio.Semaphore | None = None
        self._host_bound = 0
        self._pool: HandlerThreads | None = None
        self._nudging = False
        self._finished: list[Subscribed] = []
        self._finished_lock = threading.Lock()

    async def subscribe(self, workload_id: str, spec: ComponentSpec, artefact: str,
                        plan: messaging_config.Subscriptions, host_slots: int) -> None:
        """Loads the handler and subscribes (live at the NATS server when this returns).
        `plan.max_in_flight` and `host_slots` are this process's shares of the bounds."""
        if plan.max_in_flight <= 0:
            return
        if not data_connection(self.settings.plugin_host)[0]:
            raise ComponentError(spec.wasm_path, "wasmcloud:messaging handlers need NATS (run under wasmfleet host)")

        def load() -> HandlerComponent:
            handler = HandlerComponent(spec, self.settings, Path(artefact), plan.handler_timeout_s)
            handler.warm_up()
            return handler

        handler = await owned_loading.load_owned(load)
        try:
            bus = open_bus(self.settings.plugin_host)  # the plugin's host start opened it already
            if self._pool is None:
                self._bus = bus
                self._host_bound = host_slots
                # This process's share of the CPUs, as it has of the host's bound (worker processes
                # split both alike): about one handler thread per CPU on the whole host.
                cpus = (os.cpu_count() or 2) * host_slots / messaging_config.HOST_MAX_IN_FLIGHT
                self._pool = HandlerThreads(max(1, host_slots), target=max(1, round(cpus)))
                self._host_slots = await self._on_bus(self._make_semaphore(host_slots))
            entry = Subscribed(workload_id, handler, plan,
                               await self._on_bus(self._make_semaphore(plan.max_in_flight)),
                               idle=await self._on_bus(self._make_event()))
        except BaseException:
            handler.close()  # nothing refers to it yet
            raise
        entry.idle.set()
        try:
            for subject in plan.subjects:
                entry.subs.append(await self._on_bus(bus.subscribe(subject, plan.queue, self._receiver(entry))))
        except BaseException as exc:
            await self._drop(entry, 0)
            if isinstance(exc, MessagingUnavailable):  # worth a retry: NATS may come back
                raise RuntimeUnavailable(str(exc)) from None
            raise
        self._by_workload.setdefault(workload_id, []).append(entry)

    async def unsubscribe(self, workload_id: str, grace_s: float = 5.0) -> None:
        """Unsubscribes the workload's components, lets their in-flight messages end (bounded)."""
        for entry in self._by_workload.pop(workload_id, []):
            await self._drop(entry, grace_s)

    async def _drop(self, entry: Subscribed, grace_s: float) -> None:
        async def stop() -> None:
            for sub in entry.subs:
                try:
                    await sub.unsubscribe()
                except Exception as exc:  # the connection is gone: so is the subscription
                    log.debug("unsubscribe: %s", exc)
            if self._bus is not None and self._bus._client is not None and self._bus._client.is_connected:
                await self._bus._client.flush(timeout=2)
            try:
                async with asyncio.timeout(grace_s):
                    await entry.idle.wait()
            except TimeoutError:
                log.warning("%s: %d message(s) still running after %gs", entry.workload_id,
                            entry.counters.inflight, grace_s)

        await self._on_bus(stop())
        entry.handler.close()

    def _receiver(self, entry: Subscribed) -> Any:
        async def on_message(msg: Any) -> None:
            counters = entry.counters
            counters.received += 1
            host_slots = self._host_slots
            assert host_slots is not None and self._pool is not None
            if entry.slots.locked() or host_slots.locked():
                # Waiting here holds the subscription's delivery: later messages stay in nats-py's
                # bounded pending buffer meanwhile.
                try:
                    async with asyncio.timeout(entry.plan.admission_wait_s):
                        await entry.slots.acquire()
                        try:
                            await host_slots.acquire()
                        except BaseException:
                            entry.slots.release()
                            raise
                except TimeoutError:
                    counters.dropped_admission += 1
                    log.warning("%s: message on %s dropped: no free slot within %gs", entry.workload_id,
                                msg.subject, entry.plan.admission_wait_s)
                    return
            else:  # free slots: no timer to arm (the common case under a steady load)
                await entry.slots.acquire()
                await host_slots.acquire()
            counters.inflight += 1
            entry.idle.clear()
            subject, data, reply = msg.subject, msg.data, msg.reply or None
            if entry.runs_inline():
                counters.inline += 1
                try:
                    self._handle(entry, subject, data, reply)
                finally:
                    self._release(entry)
                return
            self._pool.submit(lambda: self._run(entry, subject, data, reply))
            if not self._nudging and self._pool.backlog():
                self._nudging = True
                asyncio.get_running_loop().call_later(self._pool.stall_s, self._nudge)

        return on_message

    def _nudge(self) -> None:
        """On the loop, while messages wait for a handler thread: one more thread when the oldest
        has waited too long (see handler_threads)."""
        if self._pool is not None and self._pool.nudge():
            asyncio.get_running_loop().call_later(self._pool.stall_s, self._nudge)
        else:
            self._nudging = False

    def _run(self, entry: Subscribed, subject: str, body: bytes, reply_to: str | None) -> None:
        """On a pool thread: handles one message, then hands its slots back to the loop (finished
        messages are batched: one loop wake-up releases every slot freed meanwhile)."""
        try:
            self._handle(entry, subject, body, reply_to)
        finally:
            with self._finished_lock:
                self._finished.append(entry)
                wake = len(self._finished) == 1
            if wake and self._bus is not None:
                self._bus.loop.call_soon_threadsafe(self._release_finished)

    def _release_finished(self) -> None:
        with self._finished_lock:
            finished, self._finished = self._finished, []
        for entry in finished:
            self._release(entry)

    def _release(self, entry: Subscribed) -> None:
        """On the loop: one message of `entry` has been handled."""
        assert self._host_slots is not None
        entry.counters.inflight -= 1
        entry.slots.release()
        self._host_slots.release()
        if entry.counters.inflight == 0:
            entry.idle.set()

    def _handle(self, entry: Subscribed, subject: str, body: bytes, reply_to: str | None) -> None:
        counters = entry.counters
        # CPU time of this thread, not wall time: a handler thread waiting for the GIL under load
        # is not a slow handler.
        began = time.thread_time()
        try:
            entry.handler.invoke(subject, body, reply_to)
            counters.handled += 1
        except HandlerError as exc:
            counters.failed += 1
            log.info("%s: handler answered err for %s: %s", entry.workload_id, subject, exc)
        except GuestTrap as exc:
            if exc.deadline:
                counters.dropped_deadline += 1
            else:
                counters.dropped_trap += 1
            log.warning("%s: message on %s dropped: %s", entry.workload_id, subject, exc)
        except Exception as exc:
            counters.dropped_trap += 1
            log.exception("%s: host error handling a message on %s: %s", entry.workload_id, subject, exc)
        finally:
            quick = time.thread_time() - began <= QUICK_CPU_S
            entry.quick_streak = min(entry.quick_streak + 1, INLINE_AFTER) if quick else 0

    async def _make_semaphore(self, n: int) -> asyncio.Semaphore:
        return asyncio.Semaphore(n)

    async def _make_event(self) -> asyncio.Event:
        return asyncio.Event()

    async def _on_bus(self, coro: Any) -> Any:
        """Runs `coro` on the bus's loop (where subscriptions and their semaphores live)."""
        bus = self._bus or open_bus(self.settings.plugin_host)
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, bus.loop))

    def stats(self) -> dict[str, Any]:
        per: dict[str, Any] = {}
        for workload_id, entries in self._by_workload.items():
            total = Counters().as_dict()
            for entry in entries:
                for key, value in entry.counters.as_dict().items():
                    total[key] += value
            per[workload_id] = total
        return {"workloads": per, "host_slots": self._host_bound,
                "slow_consumer_drops": self._bus.slow_consumer_drops if self._bus else 0}

    async def close(self, grace_s: float) -> None:
        for workload_id in list(self._by_workload):
            await self.unsubscribe(workload_id, grace_s)
        if self._pool is not None:
            self._pool.close()
