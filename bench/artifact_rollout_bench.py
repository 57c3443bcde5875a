"""Benchmark of a re-pushed tag rolling out through an Artifact, not a test.

Runs a real docker-registry, nats-server (JetStream), the embedded API server, the operator
(`wasmfleet operator --artifact-poll-interval 1`) and N real `wasmfleet host` processes. A
WorkloadDeployment of R replicas (default 3 on 3 hosts) runs the componentize-js hello guest (~13 MB)
through an Artifact (`artifact://app`). Each round pushes a new build of the same tag (the guest with
its response body changed, so each round is a new digest the hosts have never compiled) and measures
the time from the tag's manifest PUT to every replica answering with the new body, split into:
detected (the Artifact's status.digest changes: poll + pull + Object Store upload) and served.

Peer, same run: upstream's way, a spec edit (the deployment's template image patched to a new tag
pushed beforehand, which hosts pull from the registry themselves): the same rollout without
detection and publishing. Prints medians and ratios: artifact rollout / 5 s target, artifact
rollout / spec-edit rollout.

Every new digest is compiled by every host (seconds per host for a 13 MB guest, all hosts at once
on this machine's 2 cores). `--alternate` cycles two builds instead (a rollback-style re-push): after
the first two rounds the hosts' compile caches hold both, so the figure is the delivery and rollout
path alone. Rounds with a cold compile are reported apart.

`--compiler` sets the hosts' WASMFLEET_COMPILER: "tiered" (the default: a new digest serves from
Winch code, compiled several times faster, and Cranelift code replaces it in the background) or
"cranelift" (the optimizing compile before the first request: the figure without tiering).

    .venv/bin/python bench/artifact_rollout_bench.py [--rounds 5] [--hosts 3] [--replicas 3] [--alternate]
        [--compiler tiered|cranelift|winch]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import psutil

from wasmfleet.host.runtime import tiering
from wasmfleet.kube import client, rest_paths
from wasmfleet.testing import nats as nats_helper
from wasmfleet.testing.oci_registry_server import push_wasm, running_registry

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "integration"))
import operator_harness as h  # noqa: E402
from tests.components.build import build_component  # noqa: E402

NS = "default"
BIN = Path(sys.executable).parent
BODY = b"hello from javascript"


def hosts_cpu_s(procs: list[subprocess.Popen[bytes]]) -> float:
    """CPU seconds the host processes and their workers have used, without the niced background
    compile thread of tiered compilation (`tiering.THREAD_NAME`, cumulative per thread): the work
    on the rollout's path, which on a shared machine is a steadier figure than wall time."""
    total = 0.0
    for proc in procs:
        try:
            top = psutil.Process(proc.pid)
            for p in [top, *top.children(recursive=True)]:
                times = p.cpu_times()
                total += times.user + times.system
                for thread in p.threads():  # the compile thread lives as long as its process
                    comm = Path(f"/proc/{p.pid}/task/{thread.id}/comm")
                    with contextlib.suppress(OSError):
                        if comm.read_text().strip() == tiering.THREAD_NAME.decode():
                            total -= thread.user_time + thread.system_time
        except psutil.NoSuchProcess:
            pass
    return total


def variant(wasm: bytes, tag: str) -> tuple[bytes, str]:
    """The guest answering `hello from <tag>` (10 characters, as long as "javascript")."""
    assert len(tag) == 10
    new = b"hello from " + tag.encode()
    return wasm.replace(BODY, new), new.decode() + "\n"


async def bodies(session: aiohttp.ClientSession, kube: client.KubeClient, replicas: int) -> list[str] | None:
    items, _ = await kube.list(rest_paths.WORKLOADS, NS, "runtime.wasmcloud.dev/workload-deployment=bench")
    items = [w for w in items if not w["metadata"].get("deletionTimestamp")]
    hosts, _ = await kube.list(rest_paths.HOSTS, NS)
    port_of = {x["hostId"]: x["httpPort"] for x in hosts}
    out = []
    for w in items:
        st = w.get("status") or {}
        if st.get("hostId") not in port_of:
            continue
        try:
            async with session.get(f"http://127.0.0.1:{port_of[st['hostId']]}/",
                                   headers={"Host": "bench.localhost"}) as r:
                if r.status == 200:
                    out.append(await r.text())
        except (aiohttp.ClientError, TimeoutError):
            pass
    return out if len(out) >= replicas else None


async def wait_all(session: aiohttp.ClientSession, kube: client.KubeClient, replicas: int, body: str,
                   t0: float, digest: str | None = None, limit_s: float = 120.0) -> tuple[float, float]:
    """(seconds until the Artifact shows `digest`, seconds until every replica answers `body`)."""
    detected = 0.0 if digest is None else -1.0
    while True:
        if detected < 0:
            art = await kube.get(rest_paths.ARTIFACTS, NS, "app")
            if (art.get("status") or {}).get("digest") == digest:
                detected = time.monotonic() - t0
        got = await bodies(session, kube, replicas)
        # Every replica of the deployment (old ones are deleted once the new set is Ready).
        if got and len(got) == replicas and set(got) == {body}:
            return max(detected, 0.0), time.monotonic() - t0
        if time.monotonic() - t0 > limit_s:
            raise SystemExit(f"not every replica served {body!r} within {limit_s:g} s (last: {got})")
        await asyncio.sleep(0.05)


async def run(args: argparse.Namespace) -> None:
    wasm = build_component(args.guest).read_bytes()
    if wasm.count(BODY) == 0:
        raise SystemExit(f"{args.guest} does not answer {BODY.decode()!r}")
    print(f"guest {args.guest}: {len(wasm) / 1e6:.1f} MB; {args.hosts} hosts, {args.replicas} replicas; "
          f"poll interval {args.poll:g}s; compiler {args.compiler}", flush=True)
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        with running_registry(tmp / "registry") as registry, \
                nats_helper.running_nats_server(tmp / "nats") as url, h.apiserver(tmp / "api") as kubeconfig:
            procs = [subprocess.Popen(
                [str(BIN / "wasmfleet"), "host", "--nats", url, "--name", f"bench-host-{i:04d}",
                 "--heartbeat-interval", "1", "--data-dir", str(tmp / f"host{i}"),
                 "--cache-dir", str(tmp / f"cache{i}"), "--log-level", "warning"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                # Each host its own compile cache (the default is per user, shared by every host on
                # this machine and across runs): every host compiles a digest it has not seen.
                env={**os.environ, "XDG_CACHE_HOME": str(tmp / f"xdg{i}"), "WASMFLEET_COMPILER": args.compiler})
                for i in range(args.hosts)]
            procs.append(subprocess.Popen(
                [str(BIN / "wasmfleet"), "operator", "--kubeconfig", str(kubeconfig), "--nats", url,
                 "--listen", "127.0.0.1:0", "--artifact-poll-interval", str(args.poll), "--log-level", "warning"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            kube = await h.kube_client(kubeconfig)
            image = f"{registry.host}/bench/hello:1"
            try:
                first, body = variant(wasm, "round-0000")
                push_wasm(registry, "bench/hello", "1", first)
                await kube.create(rest_paths.ARTIFACTS, NS, {
                    "apiVersion": "runtime.wasmcloud.dev/v1alpha1", "kind": "Artifact",
                    "metadata": {"name": "app", "namespace": NS}, "spec": {"image": image}})
                await kube.create(rest_paths.DEPLOYMENTS, NS, {
                    "apiVersion": "runtime.wasmcloud.dev/v1alpha1", "kind": "WorkloadDeployment",
                    "metadata": {"name": "bench", "namespace": NS},
                    "spec": {"replicas": args.replicas, "artifacts": [{"name": "app", "artifactFrom": {"name": "app"}}],
                             "template": {"spec": {
                                 "components": [{"name": "hello", "image": "artifact://app"}],
                                 "hostInterfaces": [{"namespace": "wasi", "package": "http",
                                                     "interfaces": ["incoming-handler"],
                                                     "config": {"host": "bench.localhost"}}]}}}})
                timeout = aiohttp.ClientTimeout(total=5)
                async with aiohttp.ClientSession(timeout=timeout) as session:
                    _, first_s = await wait_all(session, kube, args.replicas, body, time.monotonic(), None, args.limit)
                    print(f"first rollout (cold: pull, publish, 3 compiles): {first_s:.2f}s", flush=True)
                    repush, detect, edit, cpu = [], [], [], []
                    host_procs = procs[:args.hosts]
                    warmup = 2 if args.alternate else 0
                    for n in range(1, args.rounds + warmup + 1):
                        # Artifact: re-push the tag; the operator notices, pulls, publishes, rolls out.
                        build = n % 2 if args.alternate else n
                        data, body = variant(wasm, f"round-{2 * build + 1:04d}")
                        artifact_body = body
                        began = time.monotonic()
                        cpu0 = hosts_cpu_s(host_procs)
                        digest = push_wasm(registry, "bench/hello", "1", data)
                        t0 = time.monotonic()
                        found, served = await wait_all(session, kube, args.replicas, body, t0, digest, args.limit)
                        used = hosts_cpu_s(host_procs) - cpu0
                        label = "warm-up, cold compile" if n <= warmup else "measured"
                        if n > warmup:
                            repush.append(served)
                            detect.append(found)
                            cpu.append(used)
                        print(f"round {n} ({label}): re-push ({t0 - began:.2f}s to push) -> detected {found:.2f}s, "
                              f"all {args.replicas} serving {served:.2f}s; hosts' CPU {used:.1f}s "
                              f"(load average {os.getloadavg()[0]:.1f})", flush=True)
                        await asyncio.sleep(args.poll * 2)
                        # Peer: a spec edit to a tag pushed beforehand; hosts pull it from the registry.
                        data, body = variant(wasm, f"round-{2 * build + 2:04d}")
                        push_wasm(registry, "bench/edit", f"{build}", data)
                        t0 = time.monotonic()
                        await kube.patch(rest_paths.DEPLOYMENTS, NS, "bench", {"spec": {"template": {"spec": {
                            "components": [{"name": "hello", "image": f"{registry.host}/bench/edit:{build}"}]}}}})
                        _, served = await wait_all(session, kube, args.replicas, body, t0, None, args.limit)
                        if n > warmup:
                            edit.append(served)
                        print(f"round {n} ({label}): spec edit -> all serving {served:.2f}s", flush=True)
                        # Back to the Artifact (its ReplicaSet again), settled before the next round.
                        await kube.patch(rest_paths.DEPLOYMENTS, NS, "bench", {"spec": {"template": {"spec": {
                            "components": [{"name": "hello", "image": "artifact://app"}]}}}})
                        await wait_all(session, kube, args.replicas, artifact_body, time.monotonic(), None, args.limit)
                        await asyncio.sleep(args.poll * 2)
                med, worst = statistics.median(repush), max(repush)
                print(f"re-push -> every replica serving: median {med:.2f}s, worst {worst:.2f}s "
                      f"(detected: median {statistics.median(detect):.2f}s)")
                print(f"target <= 5 s -> ratio median {med / 5:.2f}, worst {worst / 5:.2f}")
                print(f"hosts' CPU seconds per re-push rollout (all {args.hosts} hosts, background compiles "
                      f"excluded): median {statistics.median(cpu):.1f}s -> on {os.cpu_count()} idle cores at "
                      f"least {statistics.median(cpu) / (os.cpu_count() or 1):.1f}s")
                print(f"spec-edit rollout (peer): median {statistics.median(edit):.2f}s -> re-push / spec edit "
                      f"{med / statistics.median(edit):.2f}")
                print(f"machine load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
            finally:
                await kube.close()
                for p in procs:
                    p.terminate()
                for p in procs:
                    try:
                        p.wait(15)
                    except subprocess.TimeoutExpired:
                        p.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--hosts", type=int, default=3)
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--poll", type=float, default=1.0)
    parser.add_argument("--guest", default="hello-js")
    parser.add_argument("--alternate", action="store_true", help="cycle two builds (warm compile caches)")
    parser.add_argument("--limit", type=float, default=120.0, help="seconds a rollout may take before giving up")
    parser.add_argument("--compiler", default="tiered", choices=["tiered", "cranelift", "winch"],
                        help="the hosts' WASMFLEET_COMPILER")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
