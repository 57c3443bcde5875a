"""`WasmServer`: the host's HTTP data plane for wasi:http components.

    server = WasmServer("0.0.0.0", 8080, workers=2, settings=RuntimeSettings())
    await server.start()
    await server.prepare(spec)                       # compile + check, off the event loop
    await server.route(spec.workload_id, ["hello.example.com"], spec)
    ...
    await server.unroute(spec.workload_id)
    await server.stop(grace_s=10)

Requests are routed by the Host header (port stripped); several workloads on one hostname are
balanced round-robin; hostname "*" catches every host without a route of its own. 400 without a
Host header, 404 for a host nobody serves. With workers <= 1 everything runs in this process;
with more, each worker is a process listening on the same port (SO_REUSEPORT).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import socket
import threading
from pathlib import Path
from typing import Any

from wasmfleet.host.plugins import messaging_config
from wasmfleet.host.runtime import engines, instances, messaging_dispatch, serving, tiering
from wasmfleet.host.runtime import workers as processes
from wasmfleet.host.runtime.errors import RuntimeUnavailable
from wasmfleet.host.runtime.specs import ComponentSpec, RuntimeSettings
from wasmfleet.lifecycle import stopping

log = logging.getLogger(__name__)


class WasmServer:
    def __init__(self, host: str = "127.0.0.1", port: int = 0, workers: int = 1,
                 settings: RuntimeSettings | None = None) -> None:
        self.host = host
        self.requested_port = port
        self.workers = max(1, workers)
        self.settings = settings or RuntimeSettings()
        engines.configure(self.settings.engine)
        self.port = 0
        self._core: serving.ServingCore | None = None
        self._workers: list[processes.Worker] = []
        self._placeholder: socket.socket | None = None
        self._prepared: dict[tuple[str, Path], str] = {}
        self._routes: dict[str, tuple[list[str], ComponentSpec]] = {}
        self._subscriptions: dict[str, list[tuple[ComponentSpec, messaging_config.Subscriptions]]] = {}
        self._started = False
        self._stopped = False
        self._lock = asyncio.Lock()
        """Serializes route changes and worker restarts, so a restarted worker misses no route."""
        self._supervisor: asyncio.Task[None] | None = None
        self.restarts = 0
        self._tier_ups: dict[str, tuple[asyncio.Task[None], threading.Event]] = {}
        """Background Cranelift compiles of workloads serving Winch code, by workload id (`tiering`)."""
        self.tier_ups = 0
        """Routes switched to optimized code so far."""

    async def start(self, routes: list[tuple[str, list[str], ComponentSpec]] | None = None) -> None:
        """Starts listening. `routes` (workload_id, hostnames, spec) are live before the port
        accepts its first connection (`wasmfleet serve` uses this: no 404 window at startup)."""
        if self._started:
            return
        initial = []
        for workload_id, hostnames, spec in routes or []:
            artefact = str(await self.prepare(spec))
            initial.append((workload_id, list(hostnames), spec, artefact))
            self._routes[workload_id] = (list(hostnames), spec)
        if self.workers == 1:
            sock = processes.listening_socket(self.host, self.requested_port, listen=False)
            self.port = sock.getsockname()[1]
            self._core = serving.ServingCore(self.settings)
            for route in initial:
                await self._core.route(*route)
            sock.listen(1024)
            await self._core.start(sock)
        else:
            # Bound, not listening: reserves the port (also when 0 was asked) for the workers.
            self._placeholder = processes.listening_socket(self.host, self.requested_port, listen=False)
            self.port = self._placeholder.getsockname()[1]
            self._workers = [
                processes.Worker(i, self.host, self.port, self.settings, initial) for i in range(self.workers)
            ]
            try:
                await asyncio.gather(*(w.ready() for w in self._workers))
            except BaseException:
                for w in self._workers:
                    w.kill()
                raise
            self._supervisor = asyncio.create_task(self._supervise())
        self._started = True

    async def _supervise(self) -> None:
        """Restarts a worker process that died, with every current route, on the same port."""
        while not self._stopped:
            await asyncio.sleep(0.5)
            for i, worker in enumerate(self._workers):
                if worker.alive() or self._stopped:
                    continue
                async with self._lock:
                    if self._stopped:
                        return
                    log.warning("wasm worker %d (pid %d) died; restarting it", i, worker.process.pid)
                    worker.kill()
                    initial = [
                        (wid, hosts, spec, self._prepared.get((wid, Path(spec.wasm_path))) or
                         str(await self.prepare(spec)))
                        for wid, (hosts, spec) in self._routes.items()
                    ]
                    fresh = processes.Worker(i, self.host, self.port, self.settings, initial)
                    try:
                        await fresh.ready()
                    except asyncio.CancelledError:
                        fresh.kill()  # stopped while restarting: not one of ours yet, nobody else stops it
                        raise
                    except Exception:
                        log.exception("restarting wasm worker %d failed", i)
                        fresh.kill()
                        continue
                    try:
                        for wid, subscribed in self._subscriptions.items():
                            for spec, plan in subscribed:
                                await self._subscribe_worker(fresh, i, wid, spec, plan)
                    except Exception:
                        log.exception("restoring the subscriptions of wasm worker %d failed", i)
                        fresh.kill()
                        continue
                    self._workers[i] = fresh
                    self.restarts += 1

    def _check_running(self) -> None:
        if not self._started or self._stopped:
            raise RuntimeUnavailable("the wasm server is not running")

    async def prepare(self, spec: ComponentSpec) -> Path:
        """Compiles `spec.wasm_path` into the cache and checks it can be linked and served.

        Raises errors.ComponentError (one line naming the file and the cause).
        """
        key = (spec.workload_id, Path(spec.wasm_path))
        artefact = await asyncio.to_thread(instances.prepare_file, spec, self.settings)
        self._prepared[key] = str(artefact)
        return artefact

    async def prepare_workload(self, component_specs: list[ComponentSpec]) -> instances.PreparedWorkload:
        """Compiles every component of a workload (manifest order) and checks how they link: what
        each exports and imports from the others, which one serves HTTP (the first exporting
        wasi:http/incoming-handler), each one's role. Raises errors.ComponentError naming the
        component (an interface exported twice, a cycle, an import nobody provides, ...)."""
        prepared = await asyncio.to_thread(instances.prepare_workload, component_specs, self.settings)
        for spec, component in zip(component_specs, prepared.components, strict=True):
            self._prepared[(spec.workload_id, Path(spec.wasm_path))] = str(component.artefact)
        return prepared

    async def route(self, workload_id: str, hostnames: list[str], spec: ComponentSpec) -> None:
        """Serves HTTP for `hostnames` with `spec` (replacing this workload's previous route).
        A spec with `peers` brings the components it imports from along (`instances.with_peers`)."""
        self._check_running()
        self._cancel_tier_up(workload_id)  # optimizing the route this one replaces is wasted work
        key = (spec.workload_id, Path(spec.wasm_path))
        artefact = self._prepared.get(key) or str(await self.prepare(spec))
        async with self._lock:
            if self._core is not None:
                await self._core.route(workload_id, hostnames, spec, artefact)
            else:
                await asyncio.gather(
                    *(w.call("route", workload_id, hostnames, spec, artefact) for w in self._workers)
                )
            self._routes[workload_id] = (list(hostnames), spec)
        if engines.tier_of(artefact) == engines.BASELINE and self.settings.engine.compiler == "tiered":
            self._start_tier_up(workload_id)

    def _start_tier_up(self, workload_id: str) -> None:
        self._cancel_tier_up(workload_id)  # a compile for the route this one replaces
        if self._stopped:
            return
        cancel = threading.Event()
        task = asyncio.create_task(self._tier_up(workload_id, cancel), name=f"tier-up {workload_id}")
        self._tier_ups[workload_id] = (task, cancel)

        def forget(_: object) -> None:
            if self._tier_ups.get(workload_id, (None,))[0] is task:
                del self._tier_ups[workload_id]

        task.add_done_callback(forget)

    def _cancel_tier_up(self, workload_id: str) -> None:
        running = self._tier_ups.pop(workload_id, None)
        if running is not None:
            running[1].set()  # a queued compile is skipped, a running one's result dropped (tiering)
            running[0].cancel()

    async def _tier_up(self, workload_id: str, cancel: threading.Event) -> None:
        """Compiles the Winch-served components of a route with Cranelift (`tiering.optimize`),
        then routes it again on the optimized artefacts, unless the route changed meanwhile."""
        if workload_id not in self._routes:
            return
        hostnames, spec = self._routes[workload_id]
        baseline = {key: artefact for key, artefact in self._prepared.items()
                    if key[0] == spec.workload_id and engines.tier_of(artefact) == engines.BASELINE}
        optimized: dict[tuple[str, Path], str] = {}
        try:
            for key in baseline:
                optimized[key] = str(await asyncio.to_thread(
                    tiering.optimize, key[1], self.settings.cache_dir, cancel))
        except tiering.Cancelled:
            return
        except Exception as exc:  # the Winch code keeps serving; nothing to undo
            log.warning("workload %s stays on baseline (winch) code: %s", workload_id, exc)
            return
        async with self._lock:
            if self._stopped or self._routes.get(workload_id) != (hostnames, spec) or \
                    any(self._prepared.get(k) != a for k, a in baseline.items()):
                return  # unrouted or routed anew while compiling: that route decides its own tier
            self._prepared.update(optimized)
            artefact = optimized.get((spec.workload_id, Path(spec.wasm_path)))
            if artefact is None:
                return
            if self._core is not None:
                await self._core.route(workload_id, hostnames, spec, artefact)
            else:
                await asyncio.gather(
                    *(w.call("route", workload_id, hostnames, spec, artefact) for w in self._workers)
                )
            self.tier_ups += 1
        log.info("workload %s now serves optimized (cranelift) code", workload_id)

    async def unroute(self, workload_id: str) -> None:
        self._check_running()
        self._cancel_tier_up(workload_id)
        async with self._lock:
            if self._core is not None:
                self._core.unroute(workload_id)
            else:
                await asyncio.gather(*(w.call("unroute", workload_id) for w in self._workers))
            self._routes.pop(workload_id, None)
        for key in [k for k in self._prepared if k[0] == workload_id]:  # the entry and its peers
            del self._prepared[key]

    async def subscribe(self, workload_id: str, spec: ComponentSpec, plan: messaging_config.Subscriptions) -> None:
        """Delivers `plan`'s messages to `spec`'s wasmcloud:messaging handler; the subscriptions are
        live at the NATS server when this returns. The per-component and per-host bounds are split
        across the worker processes, so the host as a whole stays within them."""
        self._check_running()
        key = (spec.workload_id, Path(spec.wasm_path))
        artefact = self._prepared.get(key) or str(await self.prepare(spec))
        async with self._lock:
            if self._core is not None:
                await self._core.subscribe(workload_id, spec, artefact, plan, messaging_config.HOST_MAX_IN_FLIGHT)
            else:
                await asyncio.gather(*(self._subscribe_worker(w, i, workload_id, spec, plan, artefact)
                                       for i, w in enumerate(self._workers)))
            self._subscriptions.setdefault(workload_id, []).append((spec, plan))

    async def _subscribe_worker(self, worker: processes.Worker, index: int, workload_id: str, spec: ComponentSpec,
                                plan: messaging_config.Subscriptions, artefact: str | None = None) -> None:
        share = messaging_dispatch.split_bound(min(plan.max_in_flight, messaging_config.HOST_MAX_IN_FLIGHT),
                                               len(self._workers))[index]
        host_share = messaging_dispatch.split_bound(messaging_config.HOST_MAX_IN_FLIGHT, len(self._workers))[index]
        if share <= 0:
            return  # fewer slots than workers: only the first workers subscribe
        artefact = artefact or self._prepared.get((spec.workload_id, Path(spec.wasm_path))) or \
            str(await self.prepare(spec))
        queue = plan.queue
        if queue is None:
            # Broadcast means once per replica: this host's workers share a queue group of their own,
            # so the host handles each message once, as a single process would.
            queue = f"_wasmfleet_broadcast.{self.settings.plugin_host.host_id or 'host'}.{workload_id}.{spec.name}"
        await worker.call("subscribe", workload_id, spec, artefact,
                          dataclasses.replace(plan, max_in_flight=share, queue=queue), host_share)

    async def unsubscribe(self, workload_id: str) -> None:
        """Ends the workload's subscriptions; in-flight messages finish (bounded by the drain timeout)."""
        self._check_running()
        async with self._lock:
            if self._subscriptions.pop(workload_id, None) is None:
                return
            if self._core is not None:
                await self._core.unsubscribe(workload_id)
            else:
                await asyncio.gather(*(w.call("unsubscribe", workload_id) for w in self._workers))

    def routes(self) -> dict[str, list[str]]:
        return {wid: hosts for wid, (hosts, _) in self._routes.items()}

    async def stop(self, grace_s: float | None = None) -> None:
        """Stops accepting connections, lets in-flight requests finish (bounded), then stops."""
        if not self._started or self._stopped:
            return
        self._stopped = True
        if self._supervisor is not None:
            self._supervisor.cancel()
        for workload_id in list(self._tier_ups):
            self._cancel_tier_up(workload_id)
        grace = self.settings.drain_timeout_s if grace_s is None else grace_s
        if self._core is not None:
            await self._core.stop(grace)
        else:
            async def stop_one(w: processes.Worker) -> None:
                # Bounded without trusting the worker: a stuck one (or one whose pipe is held by a
                # slow route) is killed a moment after the grace period, never waited for.
                try:
                    if w.alive():
                        await stopping.bounded(w.call("stop", grace, timeout=grace + 0.5), grace + 1,
                                               f"stopping wasm worker {w.index}")
                    await asyncio.to_thread(w.join, 0.5)
                finally:
                    w.kill()

            await asyncio.gather(*(stop_one(w) for w in self._workers))
        if self._placeholder is not None:
            self._placeholder.close()

    async def stats_async(self) -> dict[str, Any]:
        """Counters from every worker (requests, 5xx, traps, timeouts, warm instances)."""
        if self._core is not None:
            return {"workers": [self._core.stats()]}
        results: list[Any] = []
        for w in self._workers:
            try:
                results.append(await w.call("stats", timeout=10))
            except RuntimeUnavailable as exc:
                results.append({"error": str(exc)})
        return {"workers": results}

    def stats(self) -> dict[str, Any]:
        """Synchronous summary from this process's view (routes, workers alive)."""
        out: dict[str, Any] = {
            "port": self.port,
            "workers": self.workers,
            "routes": self.routes(),
        }
        if self._core is not None:
            out["serving"] = self._core.stats()
        else:
            out["workers_alive"] = sum(1 for w in self._workers if w.alive())
            out["worker_restarts"] = self.restarts
        return out
