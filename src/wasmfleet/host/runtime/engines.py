"""The wasmtime engine of this process, its epoch ticker, and the on-disk component cache.

Compiled components are serialized to `<cache_dir>/<key>.cwasm` where key = sha256 of (the
component's sha256, the wasmtime version, the engine configuration), and loaded with
`Component.deserialize_file` (mmap: milliseconds, versus seconds to compile a 13-18 MB guest).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import threading
import time
from pathlib import Path

import wasmtime
from wasmtime import _bindings
from wasmtime import component as cm

from wasmfleet.host.runtime import byte_lists
from wasmfleet.host.runtime.errors import ComponentError
from wasmfleet.host.runtime.specs import EngineSettings

_BASE_CONFIG = "component-model;epoch-interruption;cranelift-opt=speed"

_COMPONENT_MAGIC = b"\0asm\x0d\x00\x01\x00"
_MODULE_MAGIC = b"\0asm\x01\x00\x00\x00"

_engine: wasmtime.Engine | None = None
_engine_lock = threading.Lock()
_settings = EngineSettings()
"""What the process's engine is (or will be) created with; set by `configure`."""
_ticker: threading.Thread | None = None
_tick_s = 0.01


def wasmtime_version() -> str:
    return importlib.metadata.version("wasmtime")


def configure(settings: EngineSettings) -> None:
    """Sets how this process's engine is made. The engine is process-wide (components are bound
    to it), so once it exists a different pooling choice is refused rather than ignored."""
    global _settings
    with _engine_lock:
        if _engine is not None and settings.pooling_allocator != _settings.pooling_allocator:
            raise RuntimeError(
                f"the wasmtime engine of this process already exists with "
                f"pooling_allocator={_settings.pooling_allocator}"
            )
        _settings = settings


def engine_config() -> str:
    """Everything that changes compiled code; part of the cache key."""
    return _BASE_CONFIG + (";pooling-v2" if _settings.pooling_allocator else "")


def engine(tick_s: float = 0.01) -> wasmtime.Engine:
    """The process-wide engine (components are bound to an engine; one is enough per process)."""
    global _engine, _ticker, _tick_s
    with _engine_lock:
        if _engine is None:
            config = wasmtime.Config()
            config.wasm_component_model = True
            config.epoch_interruption = True
            config.cranelift_opt_level = "speed"
            if _settings.pooling_allocator:
                _enable_pooling(config)
            _engine = wasmtime.Engine(config)
            _tick_s = tick_s
            _ticker = threading.Thread(target=_tick, args=(_engine, tick_s), name="epoch-ticker",
                                       daemon=True)
            _ticker.start()
        return _engine


def _enable_pooling(config: wasmtime.Config) -> None:
    """Pooling instance allocator: slots for memories/tables are reserved once and reused, so a
    fresh instance per request does not mmap/munmap and page-fault its memory every time (the
    largest per-request cost without it). wasmtime-py exposes it only through the raw C API.
    Sized for interpreter guests (CPython/StarlingMonkey: dozens of core instances, big tables).
    """
    b = _bindings
    pool = b._wasmtime_pooling_allocation_config_new()
    # Totals bound live instances per process (warm pools of many workloads add up); slots are
    # address-space reservations (about 4 GB + guard per memory), committed only when used.
    b._wasmtime_pooling_allocation_config_total_component_instances_set(pool, 1000)
    b._wasmtime_pooling_allocation_config_total_core_instances_set(pool, 10000)
    b._wasmtime_pooling_allocation_config_total_memories_set(pool, 1000)
    b._wasmtime_pooling_allocation_config_total_tables_set(pool, 2000)
    b._wasmtime_pooling_allocation_config_total_stacks_set(pool, 1000)
    b._wasmtime_pooling_allocation_config_max_core_instances_per_component_set(pool, 100)
    b._wasmtime_pooling_allocation_config_max_memories_per_component_set(pool, 20)
    b._wasmtime_pooling_allocation_config_max_tables_per_component_set(pool, 40)
    b._wasmtime_pooling_allocation_config_max_component_instance_size_set(pool, 8 << 20)
    b._wasmtime_pooling_allocation_config_max_core_instance_size_set(pool, 8 << 20)
    b._wasmtime_pooling_allocation_config_table_elements_set(pool, 200_000)
    b._wasmtime_pooling_allocation_config_max_memory_size_set(pool, 4 << 30)
    b._wasmtime_pooling_allocation_config_max_unused_warm_slots_set(pool, 100)
    b._wasmtime_pooling_allocation_strategy_set(config.ptr(), pool)
    b._wasmtime_pooling_allocation_config_delete(pool)


def tick_seconds() -> float:
    return _tick_s


def _tick(eng: wasmtime.Engine, period: float) -> None:
    while True:
        time.sleep(period)
        eng.increment_epoch()


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def cache_key(component_sha256: str, retype_streams: bool = True) -> str:
    rewrite = byte_lists.VERSION if retype_streams else "streams-as-is"
    material = f"{component_sha256}\n{wasmtime_version()}\n{engine_config()}\n{rewrite}"
    return hashlib.sha256(material.encode()).hexdigest()


def check_header(path: Path) -> None:
    """Raises ComponentError for files that are not WebAssembly components."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except FileNotFoundError:
        raise ComponentError(path, "no such file") from None
    except IsADirectoryError:
        raise ComponentError(path, "is a directory, not a component file") from None
    except OSError as exc:
        raise ComponentError(path, f"cannot read: {exc.strerror}") from None
    if head == _MODULE_MAGIC:
        raise ComponentError(
            path, "is a core WebAssembly module, not a component (wrap it with `wasm-tools component new`)"
        )
    if head != _COMPONENT_MAGIC:
        raise ComponentError(path, "is not a WebAssembly component (bad magic number)")


def compile_to_cache(path: Path, cache_dir: Path, retype_streams: bool = True) -> Path:
    """Compiles `path` once and returns the serialized artefact's path (blocking; run off-loop).

    `retype_streams` False compiles the component as it is (no `byte_lists` rewrite)."""
    path = Path(path)
    check_header(path)
    target = Path(cache_dir) / f"{cache_key(file_sha256(path), retype_streams)}.cwasm"
    if target.exists():
        return target
    original = path.read_bytes()
    compiled = _compile_retyped(original) if retype_streams else None
    if compiled is None:
        try:
            compiled = cm.Component(engine(), original)
        except wasmtime.WasmtimeError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else "invalid component"
            raise ComponentError(path, f"invalid component: {first}") from None
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_bytes(compiled.serialize())
    os.replace(tmp, target)
    return target


def _compile_retyped(original: bytes) -> cm.Component | None:
    """The component compiled with its byte lists retyped (`byte_lists`), or None when there is
    nothing to retype or wasmtime refuses the rewrite: that is an optimisation, never a must."""
    retyped = byte_lists.retype(original)
    if retyped is None:
        return None
    try:
        return cm.Component(engine(), retyped)
    except wasmtime.WasmtimeError:
        return None


def load(artefact: Path) -> cm.Component:
    return cm.Component.deserialize_file(engine(), str(artefact))
