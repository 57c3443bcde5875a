"""What every store of one component starts from, and the warm instances a component keeps.

An HTTP entry (`instances.LoadedComponent`), a message handler (`messaging_dispatch.HandlerComponent`)
and a linked provider (`crossing.Provider`) make their stores alike (`StoreRecipe`: the memory
limit, the component's WASI state) and keep warm instances alike when poolSize asks (`WarmPool`).
What differs, how each is instantiated and called, stays with each.
"""

from __future__ import annotations

import ctypes
import math
import threading
from typing import Any, Generic, Protocol, TypeVar

from wasmtime import _ffi as ffi
from wasmtime import component as cm

from wasmfleet.host.plugin_api import guestlogs, store_state
from wasmfleet.host.runtime import engines
from wasmfleet.host.runtime.specs import ComponentSpec, RuntimeSettings
from wasmfleet.host.wasi import filesystem

_VP = ctypes.c_void_p
_I64 = ctypes.c_int64
_GIL_HOLDING_DLL = ctypes.PyDLL(ffi.dll._name, handle=ffi.dll._handle)


def quick_c_function(name: str, restype: Any, *argtypes: Any) -> Any:
    """Like `handle_tables.c_function`, for a C call that runs no guest code and returns in
    microseconds: it keeps the GIL. Releasing it (what ctypes does by default) costs little when
    one thread runs, but with many wasm threads each release hands the GIL to another thread and
    the caller then waits for that one's next release: under load most of a fresh instance's cost
    was that wait (measured on message handlers), repeated for each of these calls. Guest code
    (instantiate, call, post-return) must still run with the GIL released."""
    fn = _GIL_HOLDING_DLL._FuncPtr((name, _GIL_HOLDING_DLL))
    fn.restype = restype
    fn.argtypes = list(argtypes)
    return fn


_store_new = quick_c_function("wasmtime_store_new", _VP, _VP, _VP, _VP)
_store_context = quick_c_function("wasmtime_store_context", _VP, _VP)
_store_limiter = quick_c_function("wasmtime_store_limiter", None, _VP, _I64, _I64, _I64, _I64, _I64)


def address(obj: Any) -> int:
    """The address behind a wasmtime-py object's C pointer."""
    addr = ctypes.cast(obj.ptr(), _VP).value
    assert addr
    return addr


class StoreRecipe:
    """How one component's stores are made: what the spec says, worked out once, not per store."""

    __slots__ = ("engine_addr", "environment", "guest_log", "log_name", "memory_bytes", "preopens", "spec")

    def __init__(self, spec: ComponentSpec, settings: RuntimeSettings, component: cm.Component) -> None:
        self.spec = spec
        self.engine_addr = address(engines.engine_of(component))
        self.memory_bytes = (spec.memory_limit_mb or settings.memory_limit_mb) << 20
        self.environment = list(spec.environment.items())
        self.preopens = [(filesystem.preopen(p.host_path, p.read_only), p.guest_path) for p in spec.preopens]
        self.log_name = f"{spec.workload_id}/{spec.name}"
        self.guest_log = guestlogs.for_component(settings.guest_log_dir, spec.workload_id, spec.name)

    def new_store(self, deadline: float = math.inf) -> tuple[int, int, store_state.WasiContext]:
        """A new store with the memory limit (its address: the caller deletes it), its context's
        address, and the component's WASI state for it."""
        store = _store_new(self.engine_addr, None, None)
        ctx = _store_context(store)
        _store_limiter(store, self.memory_bytes, -1, -1, -1, -1)
        spec = self.spec
        state = store_state.WasiContext(
            workload_id=spec.workload_id, component=spec.name, environment=self.environment,
            preopens=self.preopens, allowed_hosts=spec.allowed_hosts, network=spec.network,
            config=spec.config, grants=spec.grants, log_name=self.log_name, guest_log=self.guest_log,
            deadline=deadline,
        )
        return store, ctx, state

    def close(self) -> None:
        if self.guest_log is not None:
            self.guest_log.close()


class Pooled(Protocol):
    uses: int

    def close(self) -> None: ...


P = TypeVar("P", bound=Pooled)


class WarmPool(Generic[P]):
    """Up to `size` idle instances (poolSize; 0 keeps none), each reused until it has served
    `max_uses` calls (maxInvocations; 0: no limit). Thread-safe: wasm threads take and give."""

    __slots__ = ("_idle", "_lock", "closed", "max_uses", "size")

    def __init__(self, size: int, max_uses: int) -> None:
        self.size = size
        self.max_uses = max_uses
        self._idle: list[P] = []
        self._lock = threading.Lock()
        self.closed = False

    def __len__(self) -> int:
        return len(self._idle)

    def take(self) -> P | None:
        """A warm instance, or None (make a new one)."""
        if self.size <= 0:
            return None
        with self._lock:
            return self._idle.pop() if self._idle else None

    def give(self, inst: P, healthy: bool, used: bool = True) -> None:
        """Ends a use of `inst` (`used`: False for a warm-up's instantiation): kept warm when it
        may serve again and there is room, closed otherwise. An unhealthy one (a trap, a
        deadline) is never reused."""
        if healthy and self.size > 0 and not self.closed:
            if used:
                inst.uses += 1
            if not self.max_uses or inst.uses < self.max_uses:
                with self._lock:
                    # Once closed (the route was replaced while this call ran), nothing would free it.
                    if not self.closed and len(self._idle) < self.size:
                        self._idle.append(inst)
                        return
        inst.close()

    def close(self) -> None:
        """Frees the idle instances; one still in use is freed when given back."""
        with self._lock:
            self.closed = True
            idle, self._idle = self._idle, []
        for inst in idle:
            inst.close()
