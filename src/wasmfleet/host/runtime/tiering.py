"""Tier-up: the Cranelift (optimizing) compile of a component that is serving Winch code.

With `EngineSettings.compiler` "tiered", a component this host never compiled is served from
Winch code at once (`engines.compile_to_cache`), and `WasmServer` then calls `optimize` in the
background and re-routes the workload to the Cranelift artefact when it is ready: new requests
get new instances of the optimized code, requests in flight finish on the old ones.

The compiles run one at a time on one thread of this process at a lower CPU priority (Linux
lets a thread have its own nice value), with wasmtime's parallel compilation off (an engine of
its own, `engines.compile_to_cache(background=True)`), so the whole compile stays on that thread:
on a small machine the hosts' serving threads and the next rollout's Winch compiles keep the CPU.
No child process: nothing extra to supervise or to count among a host's workers.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import ctypes
import os
import threading
from pathlib import Path

from wasmfleet.host.runtime import engines

NICENESS = 10
"""How much lower than the host the background compile runs."""
THREAD_NAME = b"tier-up"
"""The compile thread's name for the kernel (/proc/<pid>/task/<tid>/comm), so tools (and
bench/artifact_rollout_bench.py) can tell its CPU time from the serving threads'."""
_PR_SET_NAME = 15

_compiler = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="tier-up")


class Cancelled(Exception):
    """The compile was no longer wanted (the workload was unrouted or routed anew)."""


def optimize(wasm_path: Path, cache_dir: Path, cancel: threading.Event | None = None) -> Path:
    """The Cranelift artefact of `wasm_path` in `cache_dir`, compiled on the background thread
    unless cached. Blocking: run off the event loop. With `cancel` set before the compile starts
    it is skipped, and set meanwhile its result is not wanted: both raise Cancelled (a compile
    under way cannot be interrupted; its artefact stays in the cache). Raises ComponentError
    when the component cannot be compiled."""
    return _compiler.submit(_compile, Path(wasm_path), Path(cache_dir), cancel or threading.Event()).result()


def wait_idle() -> None:
    """Returns once every compile submitted so far has ended (for tests and benchmarks)."""
    _compiler.submit(lambda: None).result()


def _compile(wasm_path: Path, cache_dir: Path, cancel: threading.Event) -> Path:
    if cancel.is_set():
        raise Cancelled()
    with contextlib.suppress(OSError, AttributeError):  # not Linux, or not allowed: normal priority
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICENESS)
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_NAME, THREAD_NAME, 0, 0, 0)
    artefact = engines.compile_to_cache(wasm_path, cache_dir, tier=engines.OPTIMIZED, background=True)
    if cancel.is_set():
        raise Cancelled()
    return artefact
