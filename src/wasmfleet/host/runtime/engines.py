"""The wasmtime engines of this process, their epoch ticker, and the on-disk component cache.

Two compilers, one engine each (a compiled component is bound to the engine it was made for):
Cranelift optimizes (the tier that serves in steady state) and Winch is a baseline compiler,
several times faster to compile a 13-18 MB interpreter guest, with slower code. With
`EngineSettings.compiler` "tiered" (the default) a component never compiled before gets Winch
code at once and `tiering` compiles the Cranelift code in the background, after which new
instances use it. "cranelift" or "winch" pin one tier.

Compiled components are serialized to `<cache_dir>/<key>.cwasm` (Cranelift) or
`<key>.winch.cwasm` (Winch), key = sha256 of (the component's sha256, the wasmtime version, the
tier's engine configuration), and loaded with `Component.deserialize_file` (mmap: milliseconds,
versus seconds to compile). `load` picks the engine from the artefact's name, and everything that
makes stores or linkers for a component asks `engine_of(component)`: a store, its linker and its
component must share one engine, and wasmtime refuses an artefact of another configuration.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import logging
import os
import threading
import time
from pathlib import Path
from typing import Literal, cast

import wasmtime
from wasmtime import _bindings
from wasmtime import _ffi as ffi
from wasmtime import component as cm

from wasmfleet.host.runtime import byte_lists
from wasmfleet.host.runtime.errors import ComponentError
from wasmfleet.host.runtime.specs import EngineSettings

log = logging.getLogger(__name__)

Tier = Literal["cranelift", "winch"]
OPTIMIZED: Tier = "cranelift"
BASELINE: Tier = "winch"

_BASE_CONFIG = "component-model;epoch-interruption"
_TIER_CONFIG: dict[Tier, str] = {"cranelift": "cranelift-opt=speed", "winch": "strategy=winch"}
# wasmtime_strategy_t of the C API; wasmtime-py's Config.strategy accepts only auto/cranelift.
_STRATEGY: dict[Tier, int] = {"cranelift": 1, "winch": 2}
_WINCH_SUFFIX = ".winch.cwasm"

_COMPONENT_MAGIC = b"\0asm\x0d\x00\x01\x00"
_MODULE_MAGIC = b"\0asm\x01\x00\x00\x00"

ASYNC_STACK_RESIDENT = 128 << 10
"""Bytes of each pooled fiber stack kept resident between uses (see `_enable_pooling`)."""

_engines: dict[Tier, wasmtime.Engine] = {}
_background: wasmtime.Engine | None = None
"""Cranelift without parallel compilation, for `tiering`'s compiles on one niced thread; its
artefacts load into the Cranelift engine (same code-affecting configuration)."""
_engine_lock = threading.Lock()
_settings = EngineSettings()
"""What the process's engines are (or will be) created with; set by `configure`."""
_ticker: threading.Thread | None = None
_tick_s = 0.01


class CompiledComponent(cm.Component):
    """A component that knows which tier (and so which engine) its code is for."""

    tier: Tier


def wasmtime_version() -> str:
    return importlib.metadata.version("wasmtime")


def configure(settings: EngineSettings) -> None:
    """Sets how this process's engines are made. Engines are process-wide (components are bound
    to them), so once one exists a different pooling choice is refused rather than ignored."""
    global _settings
    with _engine_lock:
        if _engines and settings.pooling_allocator != _settings.pooling_allocator:
            raise RuntimeError(
                f"the wasmtime engine of this process already exists with "
                f"pooling_allocator={_settings.pooling_allocator}"
            )
        _settings = settings


def compiler() -> str:
    """The configured compiler: "tiered", "cranelift" or "winch"."""
    return _settings.compiler


def engine_config(tier: Tier = OPTIMIZED) -> str:
    """Everything that changes compiled code; part of the cache key."""
    return f"{_BASE_CONFIG};{_TIER_CONFIG[tier]}" + (";pooling-v2" if _settings.pooling_allocator else "")


def engine(tier: Tier = OPTIMIZED, tick_s: float = 0.01) -> wasmtime.Engine:
    """The process-wide engine of `tier` (components are bound to an engine; one per tier)."""
    global _ticker, _tick_s
    with _engine_lock:
        eng = _engines.get(tier)
        if eng is None:
            config = wasmtime.Config()
            config.wasm_component_model = True
            config.epoch_interruption = True
            ffi.wasmtime_config_strategy_set(config.ptr(), _STRATEGY[tier])
            if tier == "cranelift":
                config.cranelift_opt_level = "speed"
            if _settings.pooling_allocator:
                _enable_pooling(config)
            eng = _engines[tier] = wasmtime.Engine(config)
            if _ticker is None:
                _tick_s = tick_s
                _ticker = threading.Thread(target=_tick, args=(tick_s,), name="epoch-ticker", daemon=True)
                _ticker.start()
        return eng


def _background_engine() -> wasmtime.Engine:
    global _background
    with _engine_lock:
        if _background is None:
            config = wasmtime.Config()
            config.wasm_component_model = True
            config.epoch_interruption = True
            ffi.wasmtime_config_strategy_set(config.ptr(), _STRATEGY[OPTIMIZED])
            config.cranelift_opt_level = "speed"
            config.parallel_compilation = False
            # No pooling allocator: this engine only compiles (instances use `engine(OPTIMIZED)`).
            _background = wasmtime.Engine(config)
        return _background


def engine_of(component: cm.Component) -> wasmtime.Engine:
    """The engine `component` was compiled for (stores and linkers for it must use this one)."""
    return engine(component.tier if isinstance(component, CompiledComponent) else OPTIMIZED)


def tier_of(artefact: Path | str) -> Tier:
    """The tier a cached artefact was compiled with (from its name, see `compile_to_cache`)."""
    return BASELINE if str(artefact).endswith(_WINCH_SUFFIX) else OPTIMIZED


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
    # The fiber stack of a suspended call (runtime.suspension) is taken for every request: keep
    # its first pages resident when it goes back to the pool, or each request faults them in again.
    b._wasmtime_pooling_allocation_config_async_stack_keep_resident_set(pool, ASYNC_STACK_RESIDENT)
    b._wasmtime_pooling_allocation_strategy_set(config.ptr(), pool)
    b._wasmtime_pooling_allocation_config_delete(pool)


def tick_seconds() -> float:
    return _tick_s


def _tick(period: float) -> None:
    # One ticker for every engine: deadlines are counted in ticks of `period` whatever the tier.
    while True:
        time.sleep(period)
        for eng in list(_engines.values()):
            eng.increment_epoch()


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def cache_key(component_sha256: str, retype_streams: bool = True, tier: Tier = OPTIMIZED) -> str:
    rewrite = byte_lists.VERSION if retype_streams else "streams-as-is"
    material = f"{component_sha256}\n{wasmtime_version()}\n{engine_config(tier)}\n{rewrite}"
    return hashlib.sha256(material.encode()).hexdigest()


def artefact_path(cache_dir: Path, component_sha256: str, retype_streams: bool = True,
                  tier: Tier = OPTIMIZED) -> Path:
    """Where the artefact of a component (by sha256) for `tier` is cached."""
    suffix = _WINCH_SUFFIX if tier == BASELINE else ".cwasm"
    return Path(cache_dir) / f"{cache_key(component_sha256, retype_streams, tier)}{suffix}"


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


def compile_to_cache(path: Path, cache_dir: Path, retype_streams: bool = True, tier: Tier | None = None,
                     background: bool = False) -> Path:
    """Compiles `path` once and returns the serialized artefact's path (blocking; run off-loop).

    `tier` None: the configured compiler's choice; for "tiered" that is the Cranelift artefact
    when it is cached already, else Winch code (fast to make; `tiering.optimize` then makes the
    Cranelift one). A component Winch cannot compile falls back to Cranelift (logged).
    `retype_streams` False compiles the component as it is (no `byte_lists` rewrite).
    `background` (Cranelift only): compile on the calling thread alone (see `tiering`)."""
    path = Path(path)
    check_header(path)
    sha = file_sha256(path)
    if tier is None:
        mode = _settings.compiler
        if mode == "tiered":
            optimized = artefact_path(cache_dir, sha, retype_streams, OPTIMIZED)
            tier = OPTIMIZED if optimized.exists() else BASELINE
        else:
            tier = cast(Tier, mode)
    target = artefact_path(cache_dir, sha, retype_streams, tier)
    if target.exists():
        return target
    original = path.read_bytes()
    if tier == BASELINE:
        try:
            compiled = _compile(path, original, retype_streams, BASELINE)
        except ComponentError as exc:
            # Winch does not implement every wasm feature; the optimizing tier then serves alone.
            log.warning("%s: winch cannot compile it (%s); compiling with cranelift", path, exc.cause)
            return compile_to_cache(path, cache_dir, retype_streams, OPTIMIZED)
    else:
        compiled = _compile(path, original, retype_streams, OPTIMIZED, background)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f"{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_bytes(compiled.serialize())
    os.replace(tmp, target)
    return target


def _compile(path: Path, original: bytes, retype_streams: bool, tier: Tier,
             background: bool = False) -> cm.Component:
    eng = _background_engine() if background and tier == OPTIMIZED else engine(tier)
    compiled = _compile_retyped(original, eng) if retype_streams else None
    if compiled is None:
        try:
            compiled = cm.Component(eng, original)
        except wasmtime.WasmtimeError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else "invalid component"
            raise ComponentError(path, f"invalid component: {first}") from None
    return compiled


def _compile_retyped(original: bytes, eng: wasmtime.Engine) -> cm.Component | None:
    """The component compiled with its byte lists retyped (`byte_lists`), or None when there is
    nothing to retype or wasmtime refuses the rewrite: that is an optimisation, never a must."""
    retyped = byte_lists.retype(original)
    if retyped is None:
        return None
    try:
        return cm.Component(eng, retyped)
    except wasmtime.WasmtimeError:
        return None


def load(artefact: Path) -> CompiledComponent:
    """Deserializes a cached artefact into the engine of its tier."""
    tier = tier_of(artefact)
    component = CompiledComponent.deserialize_file(engine(tier), str(artefact))
    assert isinstance(component, CompiledComponent)
    component.tier = tier
    return component


def compile_set(paths: list[Path], cache_dir: Path, tier: Tier | None = None) -> list[Path]:
    """Compiles the components of one workload (instantiated together in one store, so in one
    engine) to artefacts of a single tier: `tier`, else the configured compiler's choice for the
    whole set ("tiered": Cranelift when every one is cached that way, else Winch). When Winch
    refuses one of them, the whole set is Cranelift."""
    if tier is None and _settings.compiler == "tiered":
        shas = [file_sha256(p) if Path(p).is_file() else "" for p in paths]
        cached = all(s and artefact_path(cache_dir, s).exists() for s in shas)
        tier = OPTIMIZED if cached else BASELINE
    artefacts = [compile_to_cache(p, cache_dir, tier=tier) for p in paths]
    if len({tier_of(a) for a in artefacts}) > 1:
        artefacts = [compile_to_cache(p, cache_dir, tier=OPTIMIZED) for p in paths]
    return artefacts
