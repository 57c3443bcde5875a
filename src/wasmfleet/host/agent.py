"""The host agent: one process owning the NATS connection, the workloads and the wasm data plane.

    agent = Agent(settings)
    await agent.start()          # data plane up, NATS connected, subscribed, heartbeating
    await agent.shutdown()       # graceful: refuse new work, announce leaving, drain, stop

Each request on runtime.host.<hostID>.> is answered in its own task, so commands run concurrently:
a slow fetch delays neither heartbeats nor status/stop of other workloads. Losing NATS does not touch
the workloads: they keep serving HTTP while the client reconnects (forever, every reconnect_wait_s);
subscriptions are restored by the client and a heartbeat goes out as soon as the link is back.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from datetime import UTC, datetime
from typing import Any

import nats
import nats.errors

from wasmfleet.artifacts.fetching import Fetcher
from wasmfleet.bus import messages, subjects, subscribing
from wasmfleet.host import heartbeating
from wasmfleet.host.commands import Commands
from wasmfleet.host.hosted_workloads import Workloads
from wasmfleet.host.machine import Machine
from wasmfleet.host.metrics import HostMetrics
from wasmfleet.host.plugin_api.host_plugins import HostContext
from wasmfleet.host.runtime import server, specs
from wasmfleet.host.settings import HostSettings
from wasmfleet.kube import client
from wasmfleet.lifecycle import stopping
from wasmfleet.observability import metrics_auth, probes

log = logging.getLogger(__name__)

SHUTTING_DOWN = "host is shutting down"
State = messages.WorkloadState


def advertised_hostname(settings: HostSettings) -> str:
    if settings.identity.hostname:
        return settings.identity.hostname
    bind = settings.serving.http_host
    return socket.getfqdn() if bind in ("", "0.0.0.0", "::") else bind


class Agent:
    def __init__(self, settings: HostSettings) -> None:
        self.settings = settings
        self.host_id = subjects.check_host_id(settings.identity.host_id)
        self.started_at = datetime.now(UTC)
        self.nc: Any = None
        self.server: server.WasmServer | None = None
        self.fetcher = Fetcher(settings.artifacts)
        self.workloads: Workloads | None = None
        self.heartbeats: heartbeating.HeartbeatSource | None = None
        self._inflight: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._heartbeat_task: asyncio.Task[None] | None = None
        self._closing = False
        self.metrics = HostMetrics()
        self.metrics_port: int | None = None
        self._metrics_runner: Any = None
        self._kube: client.KubeClient | None = None

    @property
    def http_port(self) -> int:
        return self.server.port if self.server is not None else 0

    async def start(self) -> None:
        serving = self.settings.serving
        lifecycle = self.settings.lifecycle
        # Guest stdout/stderr per workload, written by whichever process runs the guest.
        log_dir = lifecycle.data_dir / self.host_id / "logs"
        await asyncio.to_thread(log_dir.mkdir, parents=True, exist_ok=True)
        bus = self.settings.bus
        plugin_host = HostContext(host_id=self.host_id, nats_url=bus.data_url, nats_connection=bus.data_options)
        runtime_settings = (
            specs.RuntimeSettings(cache_dir=self.settings.runtime_cache_dir, guest_log_dir=log_dir,
                                  engine=self.settings.engine, plugin_host=plugin_host)
            if self.settings.runtime_cache_dir is not None
            else specs.RuntimeSettings(guest_log_dir=log_dir, engine=self.settings.engine, plugin_host=plugin_host)
        )
        self.server = server.WasmServer(serving.http_host, serving.http_port, serving.workers, runtime_settings)
        await self.server.start()
        self.workloads = Workloads(
            self.server, self.fetcher,
            data_dir=lifecycle.data_dir / self.host_id,
            max_concurrent_starts=lifecycle.max_concurrent_starts,
            metrics=self.metrics,
            log_dir=log_dir,
            policy=self.settings.policy,
            runtime_settings=runtime_settings,
        )
        imports, exports = heartbeating.split_interfaces(heartbeating.provided_interfaces())
        self.heartbeats = heartbeating.HeartbeatSource(
            identity=self.settings.identity,
            hostname=advertised_hostname(self.settings),
            started_at=self.started_at,
            machine=Machine(),
            counts=self.workloads.counts,
            http_port=lambda: self.http_port,
            imports=imports,
            exports=exports,
        )
        commands = Commands(self.host_id, self.workloads, self.heartbeats.build, self.metrics)
        if serving.metrics_port is not None:
            guard = await self._metrics_guard()
            app = probes.build_app(self.metrics.registry, self.not_ready, self._refresh_metrics, guard)
            self._metrics_runner, self.metrics_port = await probes.serve(
                app, serving.metrics_host, serving.metrics_port
            )
        self.nc = await self._connect()
        self.fetcher.attach_nats(self.nc)  # nats:// component URLs come from the JetStream Object Store
        self.metrics.nats_connected.set(1)

        async def on_request(msg: Any) -> None:
            # Returning at once lets the client deliver the next request: each runs in its own task.
            task = asyncio.create_task(self._answer(commands, msg))
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)

        await self.nc.subscribe(subjects.host_commands(self.host_id), cb=on_request)
        await subscribing.in_effect(self.nc)  # an operator (or a test) may ask as soon as start() returns
        self._heartbeat_task = asyncio.create_task(
            heartbeating.heartbeat_loop(
                self.nc, self.heartbeats, self.settings.bus.heartbeat_interval_s, self._wake,
                self.metrics.heartbeats.inc,
            ),
            name="heartbeats",
        )
        log.info(
            "host %s (%s) joined via %s; HTTP on %s:%d",
            self.settings.identity.friendly_name, self.host_id, self.settings.bus.nats_url,
            serving.http_host, self.http_port,
        )

    async def _connect(self) -> Any:
        bus = self.settings.bus
        complained = False  # one warning per outage, not one per attempt

        async def disconnected() -> None:
            self.metrics.nats_connected.set(0)
            if not self._closing:
                log.warning("lost NATS; workloads keep serving, reconnecting every %.1fs", bus.reconnect_wait_s)

        async def reconnected() -> None:
            nonlocal complained
            complained = False
            self.metrics.nats_connected.set(1)
            log.info("reconnected to NATS")
            self._wake.set()  # tell the operator we are here at once

        async def error(exc: Exception) -> None:
            nonlocal complained
            if not complained and not self._closing:
                complained = True
                log.warning("NATS at %s: %s; retrying every %.1fs", bus.nats_url, exc or type(exc).__name__,
                            bus.reconnect_wait_s)

        servers = [url.strip() for url in bus.nats_url.split(",") if url.strip()]
        while True:
            # With max_reconnect_attempts=-1 the client also retries the first connection itself.
            try:
                return await nats.connect(
                    servers=servers,
                    name=f"wasmfleet-host {self.settings.identity.friendly_name}",
                    connect_timeout=bus.connect_timeout_s,
                    reconnect_time_wait=bus.reconnect_wait_s,
                    max_reconnect_attempts=-1,
                    allow_reconnect=True,
                    # A silent link (partition, not a closed socket) is noticed within ~30 s.
                    ping_interval=10,
                    max_outstanding_pings=3,
                    disconnected_cb=disconnected,
                    reconnected_cb=reconnected,
                    error_cb=error,
                    # Replies to its Object Store reads arrive where only this host's identity may listen.
                    inbox_prefix=subjects.host_inbox(self.host_id),
                    **bus.connection.connect_kwargs(),
                )
            except (nats.errors.NoServersError, OSError, TimeoutError) as exc:
                await error(exc)
                await asyncio.sleep(bus.reconnect_wait_s)

    async def _metrics_guard(self) -> metrics_auth.MetricsGuard | None:
        """With --metrics-auth: /metrics asks the API server of this kubeconfig about each token."""
        kubeconfig = self.settings.serving.metrics_auth_kubeconfig
        if kubeconfig is None:
            return None
        self._kube = await client.KubeClient.from_kubeconfig(kubeconfig)
        return metrics_auth.MetricsGuard(self._kube.post)

    def not_ready(self) -> list[str]:
        """What keeps this host from taking work ([] = ready), for /readyz."""
        missing = []
        if self._closing:
            missing.append("shutting down")
        elif self.nc is None or not self.nc.is_connected:
            missing.append("NATS not connected")
        return missing

    async def _refresh_metrics(self) -> None:
        if self.workloads is not None:
            counts = self.workloads.by_state()
            for state in (State.STARTING, State.RUNNING, State.STOPPING, State.ERROR):
                self.metrics.workloads.labels(state.name.lower()).set(counts.get(state, 0))
            self.metrics.components.set(self.workloads.counts()[1])
            services = self.workloads.services_by_state()
            for service_state in messages.ServiceState:
                self.metrics.services.labels(service_state.value).set(services.get(service_state.value, 0))
        if self.server is not None and not self._closing:
            try:
                self.metrics.observe_data_plane(await self.server.stats_async())
            except Exception as exc:  # a scrape must not fail because a worker is restarting
                log.debug("data-plane stats unavailable: %s", exc)

    async def _answer(self, commands: Commands, msg: Any) -> None:
        reply = await commands.handle(msg.subject, msg.data)
        if not msg.reply:
            return
        try:
            await self.nc.publish(msg.reply, reply.body, headers=reply.headers)
        except Exception as exc:  # the requester is gone or the link dropped: nothing to answer to
            log.warning("reply to %s not sent: %s", msg.subject, exc)

    async def shutdown(self) -> None:
        """Graceful stop, over within lifecycle.drain_timeout_s + lifecycle.stop_overhead_s whatever
        state NATS, the worker processes or the guests are in:

        1. refuse new workloads (their starts are answered ERROR "host is shutting down");
        2. announce leaving on runtime.operator.leaving.<hostID> (a last HostHeartbeat), so the
           operator can place replacements while this host drains;
        3. let in-flight commands finish (half the drain budget), cancel what remains;
        4. stop the data plane: no new connections, in-flight HTTP requests finish within what is
           left of the drain budget;
        5. drain and close the NATS connection.

        Every step is awaited through `stopping.bounded`: one that hangs (a NATS call swallowing its
        cancellation, a stuck worker) costs its own bound, never the whole stop.
        """
        if self._closing:
            return
        self._closing = True
        lifecycle = self.settings.lifecycle
        loop = asyncio.get_running_loop()
        drained_by = loop.time() + lifecycle.drain_timeout_s
        over_by = drained_by + lifecycle.stop_overhead_s

        def until(end: float, at_most: float | None = None) -> float:
            left = max(0.0, end - loop.time())
            return left if at_most is None else min(at_most, left)

        if self.workloads is not None:
            self.workloads.refuse_new(SHUTTING_DOWN)
        if self.nc is not None and self.heartbeats is not None:
            await stopping.bounded(self._announce_leaving(), until(over_by, 1.0), "leaving announcement")
        if self._inflight:
            _, pending = await asyncio.wait(set(self._inflight), timeout=lifecycle.drain_timeout_s / 2)
            for task in pending:
                task.cancel()
            if pending:
                _, stuck = await asyncio.wait(pending, timeout=stopping.CANCEL_GRACE_S)
                for task in stuck:
                    log.warning("command ignored its cancellation: %s", stopping.where(task))
        if self._heartbeat_task is not None:
            self._heartbeat_task.cancel()
            await asyncio.wait({self._heartbeat_task}, timeout=stopping.CANCEL_GRACE_S)
        if self.server is not None:
            grace = until(drained_by)
            await stopping.bounded(self.server.stop(grace), grace + until(over_by, 2.0), "stopping the data plane")
        if self.workloads is not None:
            await stopping.bounded(self.workloads.discard_local_state(), until(over_by, 1.0),
                                   "removing workload scratch")
        if self.nc is not None:
            if self.nc.is_connected:
                await stopping.bounded(self.nc.drain(), until(over_by, 1.0), "NATS drain")
            await stopping.bounded(self.nc.close(), until(over_by, 0.5) or 0.1, "closing NATS")
        await stopping.bounded(self.fetcher.close(), until(over_by, 0.5) or 0.1, "closing the fetcher")
        if self._metrics_runner is not None:
            await stopping.bounded(self._metrics_runner.cleanup(), until(over_by, 0.5) or 0.1,
                                   "stopping the metrics endpoint")
        if self._kube is not None:
            await self._kube.close()
        log.info("host %s left", self.host_id)

    async def _announce_leaving(self) -> None:
        assert self.heartbeats is not None
        if await heartbeating.publish(self.nc, subjects.operator_leaving(self.host_id), self.heartbeats.build()):
            await self.nc.flush(timeout=1)
