"""Tier-up: the Cranelift (optimizing) compile of a component that is serving Winch code.

With `EngineSettings.compiler` "tiered", a component this host never compiled is served from
Winch code at once (`engines.compile_to_cache`), and `WasmServer` then calls `optimize` in the
background and re-routes the workload to the Cranelift artefact when it is ready: new requests
get new instances of the optimized code, requests in flight finish on the old ones.

`optimize` compiles in a child process at a lower CPU priority (nice 10), one at a time per
host process: wasmtime's compile uses every core, and on a small machine the hosts' serving
threads must keep running meanwhile. A process, not a thread, because a thread's priority
cannot be lowered from Python portably and the compile holds no Python state worth sharing.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from wasmfleet.host.runtime import engines
from wasmfleet.host.runtime.errors import ComponentError
from wasmfleet.host.runtime.specs import EngineSettings

NICENESS = 10
"""How much lower than the host the background compile runs."""

_one_at_a_time = threading.Lock()


class Cancelled(Exception):
    """The compile was no longer wanted (the workload was unrouted or routed anew)."""


def optimize(wasm_path: Path, cache_dir: Path, settings: EngineSettings, cancel: threading.Event | None = None,
             timeout_s: float = 900.0) -> Path:
    """The Cranelift artefact of `wasm_path` in `cache_dir`, compiled (in a niced child process)
    unless cached. Blocking: run off the event loop. `cancel` set ends the wait and kills the
    compile (raises Cancelled): an old version's compile must not take CPU from the new one's.
    Raises ComponentError when it cannot be made."""
    cancel = cancel or threading.Event()
    with _one_at_a_time:
        if cancel.is_set():
            raise Cancelled()
        target = engines.artefact_path(cache_dir, engines.file_sha256(Path(wasm_path)))
        if target.exists():
            return target
        command = [sys.executable, "-m", "wasmfleet.host.runtime.tiering", str(wasm_path), str(cache_dir),
                   "--pooling" if settings.pooling_allocator else "--no-pooling", "--parent", str(os.getpid()),
                   "--nice", str(NICENESS)]
        deadline = time.monotonic() + timeout_s
        with subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) as child:
            while child.poll() is None:
                if cancel.wait(0.1) or time.monotonic() > deadline:
                    child.kill()
                    child.wait()
                    if cancel.is_set():
                        raise Cancelled()
                    raise ComponentError(wasm_path, f"the optimizing compile took more than {timeout_s:.0f} s")
            assert child.stderr is not None
            lines = child.stderr.read().strip().splitlines()
        if child.returncode != 0 or not target.exists():
            cause = lines[-1] if lines else f"exit status {child.returncode}"
            raise ComponentError(wasm_path, f"the optimizing compile failed: {cause}")
        return target


def _exit_with_parent(parent: int) -> None:
    # Not PR_SET_PDEATHSIG: it fires when the parent *thread* that forked us ends, and that is a
    # short-lived executor thread here.
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m wasmfleet.host.runtime.tiering",
                                     description="Compile a component with Cranelift into a wasmfleet cache.")
    parser.add_argument("wasm", type=Path)
    parser.add_argument("cache_dir", type=Path)
    parser.add_argument("--pooling", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--parent", type=int, default=0)
    parser.add_argument("--nice", type=int, default=NICENESS)
    args = parser.parse_args(argv)
    os.nice(args.nice)
    if args.parent:
        threading.Thread(target=_exit_with_parent, args=(args.parent,), daemon=True).start()
    engines.configure(EngineSettings(pooling_allocator=args.pooling, compiler="cranelift"))
    try:
        artefact = engines.compile_to_cache(args.wasm, args.cache_dir, tier=engines.OPTIMIZED)
    except ComponentError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    print(artefact)
    return 0


if __name__ == "__main__":
    sys.exit(main())
