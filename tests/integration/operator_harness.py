"""Shared pieces of the operator integration tests and benchmarks (not a test module).

- `apiserver(tmp)`: a real `wasmfleet apiserver` subprocess (testing.apiserver); yields its kubeconfig.
- `FakeHost`: a protocol responder on the REAL nats-server standing in for `wasmfleet host` where
  a test is about the operator's decisions (placement, failover timing) rather than running wasm:
  it heartbeats, answers workload.start/status/stop from an in-memory table, and can "die" (stop
  heartbeating and answering at once, like kill -9), be partitioned (the same, but keeping its
  workloads, then heal) or leave gracefully. It advertises what a real `wasmfleet host` advertises
  (computed from the host's own code), plus the interfaces of any host plugin a test names.
- `running_operator(...)`: an in-process operator (manager.Operator) on those servers.
- `HostProcesses`: real `wasmfleet host` processes, where a test runs wasm.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import nats

from wasmfleet.bus import messages, subjects
from wasmfleet.host import heartbeating
from wasmfleet.kube import client, leasing
from wasmfleet.operator import manager, settings
from wasmfleet.testing import apiserver as apiserver_helper


def apiserver(data_dir: Path, *extra_args: str) -> contextlib.AbstractContextManager[Path]:
    """A real embedded API server on a free port; yields the kubeconfig it writes."""
    return apiserver_helper.running_apiserver(data_dir, *extra_args)


class FakeHost:
    """A protocol-level host on real NATS (see module docstring)."""

    def __init__(
        self,
        nats_url: str,
        name: str,
        *,
        labels: dict[str, str] | None = None,
        plugin_interfaces: list[tuple[str, str, list[str], str]] | None = None,
        environment: str = "",
        interval_s: float = 0.5,
        start_delay_s: float = 0.0,
        fail_start: str = "",
        fail_retryable: bool = False,
    ) -> None:
        self.nats_url = nats_url
        self.name = name
        self.host_id = f"id-{name}-{os.getpid()}-{time.monotonic_ns() % 100000}"
        self.labels = {"hostgroup": "default", **(labels or {})}
        # What a real host advertises; a test about a host plugin adds that plugin's interfaces
        # (as an upstream host with the plugin advertises them).
        self.imports, self.exports = heartbeating.split_interfaces(heartbeating.provided_interfaces())
        self.imports += [messages.WitInterface(namespace=ns, package=pkg, interfaces=ifaces, version=ver)
                         for ns, pkg, ifaces, ver in plugin_interfaces or []]
        self.environment = environment
        self.interval_s = interval_s
        self.start_delay_s = start_delay_s
        self.fail_start = fail_start  # when set, starts fail with this message...
        self.fail_retryable = fail_retryable  # ...and this `retryable` (a 503 registry vs a 404 image)
        self.workloads: dict[str, messages.WorkloadStartRequest] = {}
        self.starts = 0
        self.status_requests = 0
        # When set, workload.status requests are received but never answered (a host killed just
        # after a request reached it).
        self.mute_status = False
        self._nc: Any = None
        self._task: asyncio.Task[None] | None = None

    def heartbeat(self) -> messages.HostHeartbeat:
        return messages.HostHeartbeat(
            id=self.host_id,
            hostname="127.0.0.1",
            friendly_name=self.name,
            version="fake",
            labels=self.labels,
            http_port=18000,
            environment=self.environment,
            workload_count=len(self.workloads),
            imports=self.imports,
            exports=self.exports,
        )

    async def start(self) -> FakeHost:
        self._nc = await nats.connect(self.nats_url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
        await self._nc.subscribe(subjects.host_commands(self.host_id), cb=self._on_command)
        self._task = asyncio.create_task(self._beat())
        await self._nc.flush()
        return self

    async def _beat(self) -> None:
        while True:
            with contextlib.suppress(Exception):
                await self._nc.publish(subjects.operator_heartbeat(self.host_id), messages.encode(self.heartbeat()))
            await asyncio.sleep(self.interval_s)

    @staticmethod
    def _components(req: messages.WorkloadStartRequest,
                    state: messages.WorkloadState) -> list[messages.ComponentStatus]:
        """What a wasmfleet host reports for a running workload: here every component as an idle
        library (this fake runs nothing)."""
        if state is not messages.WorkloadState.RUNNING:
            return []
        return [messages.ComponentStatus(name=c.name or f"component-{i}", role=messages.ComponentRole.LIBRARY,
                                         state=messages.ComponentState.IDLE, message="fake host")
                for i, c in enumerate(req.workload.wit_world.components)]

    async def _on_command(self, msg: Any) -> None:
        command = subjects.command_from_host_subject(msg.subject, self.host_id)
        reply: messages.Message
        if command == subjects.WORKLOAD_START:
            req = messages.decode(messages.WorkloadStartRequest, msg.data)
            self.starts += 1
            if self.start_delay_s:
                await asyncio.sleep(self.start_delay_s)
            retryable = False
            if self.fail_start:
                state, text, retryable = messages.WorkloadState.ERROR, self.fail_start, self.fail_retryable
            else:
                self.workloads[req.workload_id] = req
                state, text = messages.WorkloadState.RUNNING, ""
            reply = messages.WorkloadStartResponse(
                workload_status=messages.WorkloadStatus(workload_id=req.workload_id, workload_state=state,
                                                        message=text, retryable=retryable,
                                                        components=self._components(req, state)))
        elif command == subjects.WORKLOAD_STATUS:
            req_s = messages.decode(messages.WorkloadStatusRequest, msg.data)
            self.status_requests += 1
            if self.mute_status:
                return
            state = (messages.WorkloadState.RUNNING if req_s.workload_id in self.workloads
                     else messages.WorkloadState.NOT_FOUND)
            started = self.workloads.get(req_s.workload_id)
            reply = messages.WorkloadStatusResponse(
                workload_status=messages.WorkloadStatus(
                    workload_id=req_s.workload_id, workload_state=state,
                    components=self._components(started, state) if started else []))
        elif command == subjects.WORKLOAD_STOP:
            req_t = messages.decode(messages.WorkloadStopRequest, msg.data)
            self.workloads.pop(req_t.workload_id, None)
            reply = messages.WorkloadStopResponse(
                workload_status=messages.WorkloadStatus(workload_id=req_t.workload_id,
                                                        workload_state=messages.WorkloadState.NOT_FOUND))
        else:
            reply = self.heartbeat()
        await msg.respond(messages.encode(reply))

    async def kill(self) -> None:
        """Vanish at once: no more heartbeats, no replies (what kill -9 looks like on the bus)."""
        if self._task is not None:
            self._task.cancel()
        if self._nc is not None:
            await self._nc.close()
        self._nc = None

    async def partition(self) -> None:
        """Cut off from the bus (no heartbeats, no replies) while its workloads keep running."""
        await self.kill()

    async def heal(self) -> None:
        """Back on the bus with the same ID and whatever it still runs."""
        await self.start()

    async def leave(self) -> None:
        """Graceful shutdown: announce leaving, then vanish."""
        await self._nc.publish(subjects.operator_leaving(self.host_id), messages.encode(self.heartbeat()))
        await self._nc.flush()
        await self.kill()


def operator_settings(kubeconfig: Path, nats_url: str, **kw: Any) -> settings.OperatorSettings:
    """Fast settings for tests: 1.5 s host expiry, 5 s sync interval, 3 s lease."""
    return settings.OperatorSettings(
        kubeconfig=str(kubeconfig),
        nats_url=nats_url,
        listen_port=0,
        hosts=settings.HostHealth(expiry_s=kw.pop("expiry_s", 1.5)),
        reconciling=settings.Reconciling(
            concurrency=settings.Concurrency(workloads=8), sync_interval_s=kw.pop("sync_interval_s", 5.0),
            unschedulable_retry_s=2.0, audit_interval_s=0.5,
        ),
        lease=leasing.LeaseSettings(lease_duration_s=3.0, renew_deadline_s=2.0, retry_period_s=0.4),
        **kw,
    )


@contextlib.asynccontextmanager
async def running_operator(cfg: settings.OperatorSettings) -> AsyncIterator[manager.Operator]:
    op = manager.Operator(cfg)
    stop = asyncio.Event()
    task = asyncio.create_task(op.run(stop))
    try:
        deadline = time.monotonic() + 20
        while not op.is_leader:
            if task.done():
                task.result()
                raise RuntimeError("operator exited")
            if time.monotonic() > deadline:
                raise RuntimeError("operator did not become leader")
            await asyncio.sleep(0.05)
        yield op
    finally:
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 15)


async def eventually(check: Callable[[], Awaitable[Any]], timeout_s: float = 30.0, what: str = "") -> Any:
    """Poll `check` until it returns something truthy (and return it) or fail with its last value."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what or check}: last value {last!r}")


async def kube_client(kubeconfig: Path) -> client.KubeClient:
    return await client.KubeClient.from_kubeconfig(kubeconfig)


WASMFLEET = str(Path(sys.executable).parent / "wasmfleet")


class HostProcesses:
    """Real `wasmfleet host` processes on one NATS, started and killed (-9) by name, each logging
    to tmp/<name>.log. `extra`: more arguments for every host. `own_cache`: each host compiles and
    pulls into a cache of its own (tmp/<name>-cache) rather than one they share (tmp/cache)."""

    def __init__(self, url: str, tmp: Path, extra: Sequence[str] = (), own_cache: bool = False) -> None:
        self.url, self.tmp, self.extra, self.own_cache = url, tmp, list(extra), own_cache
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str) -> None:
        cache = self.tmp / (f"{name}-cache" if self.own_cache else "cache")
        log = open(self.tmp / f"{name}.log", "ab")  # noqa: SIM115 - handed to the child
        self.procs[name] = subprocess.Popen(
            [WASMFLEET, "host", "--nats", self.url, "--name", name, "--heartbeat-interval", "1",
             "--data-dir", str(self.tmp / name), "--cache-dir", str(cache), *self.extra],
            stdout=log, stderr=subprocess.STDOUT,
        )
        log.close()

    def kill(self, name: str) -> None:
        os.kill(self.procs[name].pid, signal.SIGKILL)
        self.procs[name].wait()

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
