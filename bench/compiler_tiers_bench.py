"""Benchmark of wasmtime's two compilers as wasmfleet uses them (tiered compilation), not a test.

For each guest (the WAT hello, the componentize-js hello ~13 MB, the componentize-py hello ~18 MB):
1. compile time of the component with Winch (baseline tier) and with Cranelift (optimizing tier),
   each into an empty cache, in this process, sequentially;
2. steady-state throughput of `wasmfleet serve` pinned to each tier (WASMFLEET_COMPILER=winch or
   cranelift, cache warm), `wrk -t2 -c10`, median of 3 runs, as bench/runtime_vs_wasmtime.py does.
Prints ratios winch / cranelift for both: what serving the baseline code first costs per request,
against what it saves before the first request.

    .venv/bin/python bench/compiler_tiers_bench.py [--duration 5] [--workers 1] [--only wat,js,py]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
import runtime_vs_wasmtime as rv  # noqa: E402

from wasmfleet.host.runtime import engines, specs  # noqa: E402

CASES = [("wat", "hello-wat", 0), ("js", "hello-js", 0), ("py", "hello-py", 16)]
TIERS: tuple[engines.Tier, ...] = ("winch", "cranelift")


def compile_seconds(wasm: Path, tier: engines.Tier) -> float:
    with tempfile.TemporaryDirectory() as cache:
        t = time.perf_counter()
        engines.compile_to_cache(wasm, Path(cache), tier=tier)
        return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--only", default="wat,js,py")
    args = parser.parse_args()
    engines.configure(specs.EngineSettings.from_environment(os.environ))
    rv.CACHE.mkdir(parents=True, exist_ok=True)
    print(f"wasmfleet serve --workers {args.workers}; wrk -t2 -c10 -d{args.duration}s, median of 3; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    for key, guest, pool in CASES:
        if key not in args.only.split(","):
            continue
        wasm = rv.guests.build_component(guest)
        compiled = {tier: compile_seconds(wasm, tier) for tier in TIERS}
        served: dict[str, float] = {}
        for tier in TIERS:
            engines.compile_to_cache(wasm, rv.CACHE, tier=tier)  # warm: compiling is not measured here
            os.environ["WASMFLEET_COMPILER"] = tier  # inherited by `wasmfleet serve`
            served[tier] = rv.throughput(
                lambda p, w=wasm, pl=pool: rv.start_wasmfleet(w, p, args.workers, pl), rv.free_port(), args.duration)
        print(f"{key} ({wasm.stat().st_size / 1e6:.1f} MB): compile winch {compiled['winch']:.2f}s, "
              f"cranelift {compiled['cranelift']:.2f}s -> ratio {compiled['winch'] / compiled['cranelift']:.2f}; "
              f"req/s winch {served['winch']:.0f}, cranelift {served['cranelift']:.0f} -> ratio "
              f"{served['winch'] / served['cranelift']:.2f}", flush=True)


if __name__ == "__main__":
    main()
