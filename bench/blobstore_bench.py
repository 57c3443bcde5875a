"""Benchmark of wasi:blobstore over NATS, not a test.

A real nats-server (JetStream) and, for each object size, a fresh host process (WasmServer; each
guest's unnamed wasi:blobstore entry on the host's NATS). Per size, in the same run:

- splice: the blobstore-splice-py guest splices the HTTP request body into write-data's stream and
  get-data's stream into the response (wasi:io blocking-splice: the bytes stay in the host, so this
  is the plugin's own cost);
- copy: the blobstore-py guest reads and writes every chunk itself (componentize-py's cost on top);
- direct: nats-py's `ObjectStore.put` of the same bytes and its streaming `get(writeinto=...)`;
- hello-py echo: the same bytes through a componentize-py guest without blobstore (reference).

It prints medians, the ratios guest/direct (target: splice round trip <= 2x) and the host process's
peak RSS (VmHWM) after a warm-up, after the splice rounds and after the copy rounds: the growth must
not follow the object size (compare 10 MB and 50 MB). The first run compiles the guests into
.cache/bench-components, which shows in the first size's warm-up figure: run twice.

    .venv/bin/python bench/blobstore_bench.py [--sizes 10,50] [--rounds 3] [--copy-up-to 100]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import nats

from wasmfleet.testing.nats import nats_server

REPO = Path(__file__).resolve().parents[1]
MB = 1 << 20


def guest_wasm(name: str = "blobstore-py") -> Path:
    spec = importlib.util.spec_from_file_location("wasmfleet_test_components_build",
                                                  REPO / "tests" / "components" / "build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    path: Path = module.build_component(name)
    return path


# ---- the host process ----------------------------------------------------------------------------


async def host_main(splice_wasm: str, copy_wasm: str, hello: str, nats_url: str) -> None:
    """Runs in the child: serves the guest on a free port, prints it, runs until stdin closes."""
    from wasmfleet.host.plugin_api.host_plugins import HostContext
    from wasmfleet.host.runtime import specs
    from wasmfleet.host.runtime.server import WasmServer

    settings = specs.RuntimeSettings(cache_dir=REPO / ".cache" / "bench-components", request_timeout_s=120,
                                     max_request_body_mb=1024,
                                     plugin_host=HostContext(host_id="bench", nats_url=nats_url))
    server = WasmServer("127.0.0.1", 0, workers=1, settings=settings)
    await server.start()
    for name, wasm in (("splice", splice_wasm), ("copy", copy_wasm)):
        spec = specs.ComponentSpec(workload_id=name, name=name, wasm_path=Path(wasm),
                                   grants=(specs.Grant("wasi", "blobstore"),))
        await server.route(name, [f"{name}.bench"], spec)
    await server.route("hello", ["hello.bench"], specs.ComponentSpec(workload_id="hello", name="hello",
                                                                      wasm_path=Path(hello)))
    print(server.port, flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await server.stop(2)


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


# ---- the measurements ----------------------------------------------------------------------------


async def guest_round(session: aiohttp.ClientSession, port: int, host: str, splice: bool, bucket: str, name: str,
                      data: bytes) -> tuple[float, float]:
    base = f"http://127.0.0.1:{port}"
    headers = {"Host": host}
    suffix = "-splice" if splice else ""
    started = time.perf_counter()
    async with session.post(f"{base}/write{suffix}", params={"c": bucket, "o": name}, data=data,
                            headers=headers) as r:
        assert r.status == 200, await r.text()
        await r.read()
    wrote = time.perf_counter() - started
    started = time.perf_counter()
    size = 0
    async with session.get(f"{base}/read{suffix}", params={"c": bucket, "o": name}, headers=headers) as r:
        assert r.status == 200, await r.text()
        async for chunk in r.content.iter_chunked(1 << 20):
            size += len(chunk)
    read = time.perf_counter() - started
    assert size == len(data), (size, len(data))
    return wrote, read


async def echo_round(session: aiohttp.ClientSession, port: int, data: bytes) -> float:
    """The same bytes in and out of a componentize-py guest without blobstore (hello-py /echo):
    what moving them through a Python guest costs by itself."""
    started = time.perf_counter()
    async with session.post(f"http://127.0.0.1:{port}/echo", data=data, headers={"Host": "hello.bench"}) as r:
        assert r.status == 200
        size = 0
        async for chunk in r.content.iter_chunked(1 << 20):
            size += len(chunk)
    assert size == len(data)
    return time.perf_counter() - started


class _CountingSink:
    def __init__(self) -> None:
        self.size = 0

    def write(self, data: bytes) -> int:
        self.size += len(data)
        return len(data)


async def direct_round(nats_url: str, bucket: str, name: str, data: bytes) -> tuple[float, float]:
    nc = await nats.connect(nats_url)
    try:
        store = await nc.jetstream().object_store(bucket)
        started = time.perf_counter()
        await store.put(name, data)
        wrote = time.perf_counter() - started
        sink = _CountingSink()
        started = time.perf_counter()
        # writeinto: nats-py's streaming get (without it, get concatenates the chunks into one
        # bytes object, quadratic in the number of chunks: 12 s for 50 MB here).
        await store.get(name, writeinto=sink)  # type: ignore[arg-type]
        read = time.perf_counter() - started
        assert sink.size == len(data)
        return wrote, read
    finally:
        await nc.close()


async def measure(nats_url: str, size_mb: int, rounds: int, copy_up_to: int) -> dict[str, float]:
    host = subprocess.Popen([sys.executable, __file__, "--host", str(guest_wasm("blobstore-splice-py")),
                             str(guest_wasm("blobstore-py")), str(guest_wasm("hello-py")), nats_url],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert host.stdout is not None
        port = int(host.stdout.readline())
        bucket = f"bench{size_mb}"
        data = os.urandom(size_mb * MB)
        timeout = aiohttp.ClientTimeout(total=600)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            async with session.get(f"http://127.0.0.1:{port}/create", params={"c": bucket},
                                   headers={"Host": "splice.bench"}) as r:
                await r.read()
            await guest_round(session, port, "splice.bench", True, bucket, "warm", b"w" * 1024)
            await guest_round(session, port, "copy.bench", False, bucket, "warm", b"w" * 1024)
            rss_warm = peak_rss_mb(host.pid)
            times: dict[str, list[float]] = {k: [] for k in ("splice_w", "splice_r", "direct_w", "direct_r",
                                                            "copy_w", "copy_r", "echo")}
            for i in range(rounds):
                w, rd = await guest_round(session, port, "splice.bench", True, bucket, f"splice{i}", data)
                times["splice_w"].append(w)
                times["splice_r"].append(rd)
                w, rd = await direct_round(nats_url, bucket, f"direct{i}", data)
                times["direct_w"].append(w)
                times["direct_r"].append(rd)
            rss_splice = peak_rss_mb(host.pid)
            copy_rounds = rounds if size_mb <= copy_up_to else 0
            for i in range(copy_rounds):
                w, rd = await guest_round(session, port, "copy.bench", False, bucket, f"copy{i}", data)
                times["copy_w"].append(w)
                times["copy_r"].append(rd)
            rss_copy = peak_rss_mb(host.pid)
            for _ in range(copy_rounds):  # last: it buffers the whole body in the guest
                times["echo"].append(await echo_round(session, port, data))
        result = {k: statistics.median(v) if v else float("nan") for k, v in times.items()}
        result.update(rss_warm=rss_warm, rss_splice=rss_splice, rss_copy=rss_copy)
        return result
    finally:
        if host.stdin is not None:
            host.stdin.close()
        try:
            host.wait(15)
        except subprocess.TimeoutExpired:
            host.kill()


async def main(sizes: list[int], rounds: int, copy_up_to: int) -> None:
    with tempfile.TemporaryDirectory(prefix="blobstore-bench-") as tmp, nats_server(Path(tmp)) as server:
        results = {size: await measure(server.url, size, rounds, copy_up_to) for size in sizes}
    print(f"wasi:blobstore over NATS (JetStream object store), median of {rounds}; ratios are guest / nats-py direct")
    print(f"{'size':>6} {'direct put':>10} {'direct get':>10} | {'splice write':>12} {'splice read':>12} "
          f"{'round trip':>10} | {'copy write':>10} {'copy read':>10} {'round trip':>10} | {'hello-py echo':>13}")
    for size, r in results.items():
        direct = r["direct_w"] + r["direct_r"]
        print(f"{size:>4}MB {r['direct_w']:>9.3f}s {r['direct_r']:>9.3f}s | "
              f"{r['splice_w']:>6.3f}s {r['splice_w'] / r['direct_w']:>4.1f}x {r['splice_r']:>6.3f}s "
              f"{r['splice_r'] / r['direct_r']:>4.1f}x {(r['splice_w'] + r['splice_r']) / direct:>9.2f}x | "
              f"{r['copy_w']:>9.3f}s {r['copy_r']:>9.3f}s {(r['copy_w'] + r['copy_r']) / direct:>9.2f}x | "
              f"{r['echo']:>12.3f}s")
    print("host process peak RSS (VmHWM): after warm-up / after the splice rounds / after the copy rounds")
    for size, r in results.items():
        warm = r["rss_warm"]
        print(f"{size:>4}MB {warm:>7.1f} MB / {r['rss_splice']:>7.1f} MB (+{r['rss_splice'] - warm:.1f}) "
              f"/ {r['rss_copy']:>7.1f} MB (+{r['rss_copy'] - warm:.1f})")
    print("splice: the guest splices HTTP bodies to/from the object streams (bytes stay in the host: the plugin's "
          "own cost); copy: the guest reads and writes every chunk (componentize-py's cost on top); "
          "hello-py echo: the same bytes through a Python guest without blobstore. Targets: splice round trip "
          "<= 2x direct; RSS growth not following the object size.")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--host":
        asyncio.run(host_main(*sys.argv[2:6]))
        sys.exit(0)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10,50", help="object sizes in MB, comma-separated")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--copy-up-to", type=int, default=100,
                        help="largest size (MB) run through the copying guest (slow: ~0.3 s per MB)")
    args = parser.parse_args()
    asyncio.run(main([int(s) for s in args.sizes.split(",")], args.rounds, args.copy_up_to))
