"""Benchmark of wasi:sockets TCP over a workload's private loopback, not a test.

Two measurements, each run for the guest and for a native peer in the same run:

- latency: ROUNDS round trips of 64 bytes (write, then read the echo), median per round trip;
- throughput: ROUNDS round trips of 64 KiB, MB/s echoed (bytes one way / total time).

guest: tests/components/sockets-py as both sides. The echo server guest (`tcp-echo-server`) runs
in a child Python process (as a workload's service or component would run in another worker
process), the client guest (`bench-client`) in this process; they meet on one private loopback
directory (AF_UNIX), every wait through wasi:io/poll.
native: a plain Python socket echo server in a child process on 127.0.0.1, and a plain Python
client here doing the same loop (sendall, recv until the whole echo is back).

Prints the medians and the ratios guest/native (latency: higher is slower; throughput: lower is
slower). Each measurement is repeated --repeat times and the median run is reported.

    .venv/bin/python bench/sockets_bench.py [--rounds 2000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from wasmfleet.host.runtime import commands, specs
from wasmfleet.host.wasi import io

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tests.components.build import build_component  # noqa: E402

PORT = 7000
SMALL, LARGE = 64, 64 * 1024

_GUEST_SERVER = """
import sys
from pathlib import Path
from wasmfleet.host.runtime import commands, specs
wasm, loopback, cache, port, count = sys.argv[1:6]
spec = specs.ComponentSpec(workload_id="bench", name="server", wasm_path=Path(wasm),
                           network=specs.NetworkAccess(Path(loopback)))
command = commands.Command(spec, specs.RuntimeSettings(cache_dir=Path(cache)))
sys.exit(command.run(["server", "tcp-echo-server", port, count], commands.CommandStdio.of_process()).exit_code)
"""

_NATIVE_SERVER = """
import socket, sys, threading
server = socket.create_server(("127.0.0.1", 0))
print("listening", server.getsockname()[1], flush=True)
def echo(conn):
    with conn:
        while data := conn.recv(65536):
            conn.sendall(data)
while True:
    conn, _ = server.accept()
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    threading.Thread(target=echo, args=(conn,), daemon=True).start()
"""


def guest_run(wasm: Path, cache: Path, rounds: int, size: int) -> tuple[float, float]:
    """(median round trip in µs, total seconds) of one guest-to-guest run."""
    with tempfile.TemporaryDirectory(prefix="sockets-bench-") as tmp:
        loopback = Path(tmp) / "net"
        server = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(_GUEST_SERVER), str(wasm), str(loopback), str(cache),
             str(PORT), "1"],
            stdout=subprocess.PIPE, text=True,
        )
        try:
            assert server.stdout is not None
            first = server.stdout.readline()
            assert first.startswith("listening"), first
            spec = specs.ComponentSpec(workload_id="bench", name="client", wasm_path=wasm,
                                       network=specs.NetworkAccess(loopback))
            command = commands.Command(spec, specs.RuntimeSettings(cache_dir=cache))
            out: list[bytes] = []
            stdio = commands.CommandStdio(io.InputStream, lambda: io.CallbackOutput(out.append),
                                          lambda: io.CallbackOutput(sys.stderr.buffer.write))
            outcome = command.run(["client", "bench-client", str(PORT), str(rounds), str(size)], stdio)
            assert outcome.exit_code == 0, outcome
            values = dict(line.split(" ", 1) for line in b"".join(out).decode().splitlines() if " " in line)
            server.wait(30)
            return float(values["median_us"]), float(values["total_s"])
        finally:
            server.kill()
            if server.stdout is not None:
                server.stdout.close()


def native_run(port: int, rounds: int, size: int) -> tuple[float, float]:
    payload = b"x" * size
    times = []
    with socket.create_connection(("127.0.0.1", port)) as conn:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        start = time.perf_counter()
        for _ in range(rounds):
            t0 = time.perf_counter_ns()
            conn.sendall(payload)
            got = 0
            while got < size:
                got += len(conn.recv(65536))
            times.append(time.perf_counter_ns() - t0)
        total = time.perf_counter() - start
    return statistics.median(times) / 1000, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2000, help="round trips per latency run")
    parser.add_argument("--throughput-rounds", type=int, default=500, help="64 KiB round trips per throughput run")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    wasm = build_component("sockets-py")
    cache = REPO / ".cache" / "runtime-test-components"
    native = subprocess.Popen([sys.executable, "-c", _NATIVE_SERVER], stdout=subprocess.PIPE, text=True)
    try:
        assert native.stdout is not None
        native_port = int(native.stdout.readline().split()[1])
        results: dict[str, list[tuple[float, float]]] = {"guest": [], "native": []}
        for _ in range(args.repeat):
            results["guest"].append(guest_run(wasm, cache, args.rounds, SMALL))
            results["native"].append(native_run(native_port, args.rounds, SMALL))
        latency = {k: statistics.median(r[0] for r in v) for k, v in results.items()}
        results = {"guest": [], "native": []}
        for _ in range(args.repeat):
            results["guest"].append(guest_run(wasm, cache, args.throughput_rounds, LARGE))
            results["native"].append(native_run(native_port, args.throughput_rounds, LARGE))
        mbps = {k: statistics.median(args.throughput_rounds * LARGE / r[1] / 1e6 for r in v)
                for k, v in results.items()}
    finally:
        native.kill()
        if native.stdout is not None:
            native.stdout.close()
    print(f"machine: {os.cpu_count()} cores; {args.repeat} runs each, median run reported")
    print(f"latency, {SMALL} B round trip ({args.rounds} rounds): guest {latency['guest']:.1f} µs, "
          f"native {latency['native']:.1f} µs, guest/native {latency['guest'] / latency['native']:.2f}x")
    print(f"throughput, {LARGE // 1024} KiB round trips ({args.throughput_rounds} rounds): "
          f"guest {mbps['guest']:.1f} MB/s, native {mbps['native']:.1f} MB/s, "
          f"guest/native {mbps['guest'] / mbps['native']:.2f}")


if __name__ == "__main__":
    main()
