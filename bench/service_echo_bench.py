"""Benchmark of TCP echo from a component to its workload's service, not a test.

The service is examples/service's (componentize-py; port 7001 echoes whatever it gets), run the way a
host runs a workload's service: `translation.service_spec` + `runtime.commands.Command` under a
`ServiceSupervisor` (its own thread in this process, as in the host agent). The client is a component
of the same workload: tests/components/sockets-py's `bench-client` (componentize-py), its spec from
`translation.component_spec` with the same private loopback directory (`translation.loopback_dir`),
run on another thread of this process, as a host without --workers runs components. Every wait on
both sides goes through wasi:io/poll; the bytes go over the workload's AF_UNIX private loopback.

Peer, in the same run: a native CPython socket echo, server in a child process and client here, on
127.0.0.1 (bench/sockets_bench.py's).

Three measurements, each repeated --repeat times (median run reported):
- latency: ROUNDS round trips of 64 bytes (write, then read the whole echo), median per round trip;
- throughput: ROUNDS round trips of 64 KiB, MB/s echoed (bytes one way / total time);
- HTTP: --http-rounds GET requests, median, each HTTP request -> examples/service's front component
  -> a new TCP connection to the service's key/value port (`get hits`) -> its answer line as the
  response. The front is served by the host runtime's `WasmServer` with one worker process (a host's
  default `--workers 1`), the service by the supervisor in this process, as in a host agent. Peer: a
  CPython aiohttp server in a child process doing the same per request (connect to the native echo
  on 127.0.0.1, send the line, read it back, answer it). Both are driven by the same keep-alive
  http.client loop in a child process.
Prints the medians and the ratios service/native (latency: higher is slower; throughput: lower is
slower).

    .venv/bin/python bench/service_echo_bench.py [--rounds 2000] [--throughput-rounds 300] [--http-rounds 500]
                                                 [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from wasmfleet.bus import messages
from wasmfleet.host import service_supervision, translation
from wasmfleet.host.runtime import commands, specs
from wasmfleet.host.runtime.server import WasmServer
from wasmfleet.host.wasi import io

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
from sockets_bench import _NATIVE_SERVER, LARGE, SMALL, native_run  # noqa: E402
from tests.components.build import build_component  # noqa: E402

ECHO_PORT = 7001
WORKLOAD_ID = "bench-service-echo"

_HTTP_CLIENT = """
import http.client, statistics, sys, time
port, rounds = int(sys.argv[1]), int(sys.argv[2])
conn = http.client.HTTPConnection("127.0.0.1", port)
times = []
for _ in range(rounds):
    t0 = time.perf_counter_ns()
    conn.request("GET", "/get/hits")
    response = conn.getresponse()
    body = response.read()
    times.append(time.perf_counter_ns() - t0)
    assert response.status == 200, (response.status, body)
print(statistics.median(times) / 1000, body.decode().strip(), flush=True)
"""

_NATIVE_FRONT = """
import asyncio, sys
from aiohttp import web
echo_port = int(sys.argv[1])
async def handle(request):
    reader, writer = await asyncio.open_connection("127.0.0.1", echo_port)
    writer.write(b"get hits\\n")
    line = await reader.readline()
    writer.close()
    return web.Response(text=line.decode())
async def main():
    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    print("listening", runner.addresses[0][1], flush=True)
    await asyncio.Event().wait()
asyncio.run(main())
"""


def client_run(command: commands.Command, rounds: int, size: int) -> tuple[float, float]:
    """(median round trip in µs, total seconds) of one component-to-service run."""
    out: list[bytes] = []
    stdio = commands.CommandStdio(io.InputStream, lambda: io.CallbackOutput(out.append),
                                  lambda: io.CallbackOutput(sys.stderr.buffer.write))
    outcome = command.run(["client", "bench-client", str(ECHO_PORT), str(rounds), str(size)], stdio)
    assert outcome.exit_code == 0, outcome
    values = dict(line.split(" ", 1) for line in b"".join(out).decode().splitlines() if " " in line)
    return float(values["median_us"]), float(values["total_s"])


def http_median(port: int, rounds: int) -> tuple[float, str]:
    """(median µs per GET, the last body) from a keep-alive http.client loop in a child process."""
    out = subprocess.run([sys.executable, "-c", _HTTP_CLIENT, str(port), str(rounds)], capture_output=True,
                         text=True, check=True).stdout.split(maxsplit=1)
    return float(out[0]), out[1].strip()


def child_port(proc: subprocess.Popen[str]) -> int:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("listening"), line
    return int(line.split()[1])


async def run(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    service_wasm, client_wasm = build_component("service-example"), build_component("sockets-py")
    front_wasm = build_component("service-example-front")
    settings = specs.RuntimeSettings(cache_dir=REPO / ".cache" / "runtime-test-components")
    native = subprocess.Popen([sys.executable, "-c", _NATIVE_SERVER], stdout=subprocess.PIPE, text=True)
    native_front: subprocess.Popen[str] | None = None
    server: WasmServer | None = None
    with tempfile.TemporaryDirectory(prefix="service-echo-bench-") as scratch:
        loopback = translation.loopback_dir(Path(scratch))
        workload = messages.Workload(name="bench", namespace="default",
                                     service=messages.Service(image=f"file://{service_wasm}"))
        assert workload.service is not None
        service_spec = translation.service_spec(WORKLOAD_ID, workload.service, service_wasm, workload, {}, loopback)
        client_spec = translation.component_spec(WORKLOAD_ID, messages.Component(name="client"), 0, client_wasm,
                                                  workload, {}, loopback)
        supervisor = service_supervision.ServiceSupervisor(
            WORKLOAD_ID, commands.Command(service_spec, settings), service_supervision.RestartPolicy.for_service(1))
        front_spec = translation.component_spec(WORKLOAD_ID, messages.Component(name="front"), 0, front_wasm,
                                                 workload, {}, loopback)
        client = commands.Command(client_spec, settings)
        supervisor.start()
        try:
            native_port = child_port(native)
            native_front = subprocess.Popen([sys.executable, "-c", _NATIVE_FRONT, str(native_port)],
                                            stdout=subprocess.PIPE, text=True)
            native_front_port = child_port(native_front)
            server = WasmServer("127.0.0.1", 0, workers=1, settings=settings)
            await server.prepare(front_spec)
            await server.start(routes=[(WORKLOAD_ID, ["*"], front_spec)])
            deadline = time.monotonic() + 60
            while not (loopback / f"tcp-{ECHO_PORT}").exists():  # the service's listening socket file
                assert supervisor.state is service_supervision.State.RUNNING, supervisor.status()
                assert time.monotonic() < deadline, "the service did not listen within 60 s"
                await asyncio.sleep(0.05)
            figures: dict[str, dict[str, float]] = {}
            for label, rounds, size in (("latency", args.rounds, SMALL), ("throughput", args.throughput_rounds, LARGE)):
                runs: dict[str, list[tuple[float, float]]] = {"service": [], "native": []}
                for _ in range(args.repeat):
                    runs["service"].append(await asyncio.to_thread(client_run, client, rounds, size))
                    runs["native"].append(native_run(native_port, rounds, size))
                if label == "latency":
                    figures[label] = {k: statistics.median(r[0] for r in v) for k, v in runs.items()}
                else:
                    figures[label] = {k: statistics.median(rounds * size / r[1] / 1e6 for r in v)
                                      for k, v in runs.items()}
            http: dict[str, list[float]] = {"service": [], "native": []}
            for _ in range(args.repeat):
                median_us, body = await asyncio.to_thread(http_median, server.port, args.http_rounds)
                assert body == "(none)", body  # the service's answer to `get hits`, through the front
                http["service"].append(median_us)
                median_us, body = await asyncio.to_thread(http_median, native_front_port, args.http_rounds)
                assert body == "get hits", body  # the native echo's
                http["native"].append(median_us)
            figures["http"] = {k: statistics.median(v) for k, v in http.items()}
            assert supervisor.state is service_supervision.State.RUNNING, supervisor.status()
            return figures
        finally:
            if server is not None:
                await server.stop(1.0)
            await supervisor.stop()
            for proc in (native, native_front):
                if proc is not None:
                    proc.kill()
                    proc.wait()
                    if proc.stdout is not None:
                        proc.stdout.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2000, help="64 B round trips per latency run")
    parser.add_argument("--throughput-rounds", type=int, default=300, help="64 KiB round trips per throughput run")
    parser.add_argument("--http-rounds", type=int, default=500, help="GET requests per HTTP run")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    figures = asyncio.run(run(args))
    latency, mbps, http = figures["latency"], figures["throughput"], figures["http"]
    print(f"machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}; {args.repeat} runs each, median run")
    print(f"latency, {SMALL} B round trip ({args.rounds} rounds): component->service {latency['service']:.1f} µs, "
          f"native {latency['native']:.1f} µs, service/native {latency['service'] / latency['native']:.1f}x")
    print(f"throughput, {LARGE // 1024} KiB round trips ({args.throughput_rounds} rounds): "
          f"component->service {mbps['service']:.2f} MB/s, native {mbps['native']:.1f} MB/s, "
          f"service/native {mbps['service'] / mbps['native']:.4f}")
    print(f"HTTP GET -> component -> TCP to the service -> answer ({args.http_rounds} requests): "
          f"{http['service']:.0f} µs, native (aiohttp -> TCP echo) {http['native']:.0f} µs, "
          f"service/native {http['service'] / http['native']:.1f}x")


if __name__ == "__main__":
    main()
