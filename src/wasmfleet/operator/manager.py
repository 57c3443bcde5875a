"""The operator process: wires informers, controllers, the host registry, leader election, HTTP.

Every replica keeps its caches and host registry warm; only the Lease holder runs the controllers'
workers (keys accumulate in the queues meanwhile, so a new leader starts with a complete backlog).
A leader that loses its lease returns exit code 1 so its supervisor restarts it as a standby.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import nats

from wasmfleet.kube import client, events, freshness, informing, leasing, owners, rest_paths, running
from wasmfleet.observability import metrics_auth, probes
from wasmfleet.operator import (
    artifacts,
    assignments,
    context,
    deployments,
    hostregistry,
    hosts,
    metrics,
    replicasets,
    settings,
    workloads,
)

log = logging.getLogger(__name__)


class Operator:
    def __init__(self, cfg: settings.OperatorSettings) -> None:
        self.settings = cfg
        self.metrics = metrics.Metrics()
        self.port = 0  # bound HTTP port once started
        self.ctx: context.Context | None = None
        self.is_leader = False  # True while this process runs the controllers
        self._nats_connected = False
        self._tasks: list[asyncio.Task[Any]] = []
        self._controllers: dict[str, running.Controller] = {}

    # ------------------------------------------------------------------ readiness

    def not_ready(self) -> list[str]:
        missing = []
        if self.ctx is None:
            return ["starting"]
        unsynced = [i.resource.plural for i in self.ctx.informers.all() if not i.synced]
        if unsynced:
            missing.append(f"caches not synced: {', '.join(unsynced)}")
        if not self._nats_connected:
            missing.append(f"NATS {self.settings.nats_url} not connected")
        return missing

    # ------------------------------------------------------------------ run

    async def run(self, stop: asyncio.Event | None = None) -> int:
        """Run until `stop` is set (returns 0) or the lease is lost (returns 1)."""
        stop = stop or asyncio.Event()
        cfg = self.settings
        kube = await client.KubeClient.from_kubeconfig(cfg.kubeconfig)
        runner = None
        nc: Any = None
        elector: leasing.LeaderElector | None = None
        try:
            # /readyz lists what is missing (caches not synced, NATS not connected); a standby that is
            # not the leader is still ready: it can take over.
            guard = metrics_auth.MetricsGuard(kube.post) if cfg.metrics_auth else None
            app = probes.build_app(self.metrics.registry, self.not_ready, guard=guard)
            runner, self.port = await probes.serve(app, cfg.listen_host, cfg.listen_port)
            log.info("operator %s serving /metrics /healthz /readyz on %s:%d", cfg.identity, cfg.listen_host,
                     self.port)
            nc = await self._connect_nats(stop)
            if nc is None:
                return 0
            ctx = self._build_context(kube, nc)
            self.ctx = ctx
            self._nats_connected = nc.is_connected
            ctx.registry.set_connected(nc.is_connected)
            await ctx.registry.subscribe(nc)
            self._spawn(ctx.registry.watch_expiry())
            for informer in ctx.informers.all():
                self._spawn(informer.run())
            elector = leasing.LeaderElector(kube, cfg.identity, cfg.lease)
            election = self._spawn(elector.run())
            stopping = self._spawn(stop.wait())
            leading = self._spawn(elector.leading.wait())
            await asyncio.wait([stopping, leading, election], return_when=asyncio.FIRST_COMPLETED)
            synced = self._spawn(asyncio.gather(*(i.wait_synced() for i in ctx.informers.all())))
            await asyncio.wait([stopping, synced], return_when=asyncio.FIRST_COMPLETED)
            if stop.is_set() or not elector.leading.is_set():
                return 0
            self.metrics.leader.set(1)
            self.is_leader = True
            log.info("operator %s is the leader: reconciling", cfg.identity)
            for ctl in self._controllers.values():
                self._spawn(ctl.run())
            self._spawn(self._workloads.audit_hosts())
            self._spawn(self._report_queue_depth())
            lost = self._spawn(elector.lost.wait())
            await asyncio.wait([stopping, lost], return_when=asyncio.FIRST_COMPLETED)
            if elector.lost.is_set() and not stop.is_set():
                log.error("operator %s lost the lease; exiting so a standby can take over", cfg.identity)
                return 1
            return 0
        finally:
            self.metrics.leader.set(0)
            self.is_leader = False
            for task in self._tasks:
                task.cancel()
            for task in self._tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            if elector is not None:
                await elector.release()
            if nc is not None:
                with contextlib.suppress(Exception):
                    await nc.close()
            if runner is not None:
                await runner.cleanup()
            await kube.close()

    def _spawn(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.append(task)
        return task

    async def _connect_nats(self, stop: asyncio.Event) -> Any:
        async def disconnected() -> None:
            self._nats_connected = False
            if self.ctx is not None:
                self.ctx.registry.set_connected(False)
            log.warning("NATS connection lost; host liveness judgements are frozen until it returns")

        async def reconnected() -> None:
            self._nats_connected = True
            if self.ctx is not None:
                self.ctx.registry.set_connected(True)
            log.info("NATS connection restored")

        async def error(exc: Exception) -> None:
            log.debug("NATS: %s", exc)

        delay = 0.2
        while not stop.is_set():
            try:
                return await nats.connect(
                    # A comma list names the servers of a cluster: the client fails over among them.
                    servers=[url.strip() for url in self.settings.nats_url.split(",") if url.strip()],
                    name=f"wasmfleet-operator {self.settings.identity}",
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=0.5,
                    connect_timeout=2,
                    ping_interval=5,
                    max_outstanding_pings=2,
                    disconnected_cb=disconnected,
                    reconnected_cb=reconnected,
                    error_cb=error,
                    **self.settings.nats_connection.connect_kwargs(),
                )
            except (OSError, nats.errors.Error, TimeoutError) as exc:
                log.warning("cannot connect to NATS %s (%s); retrying", self.settings.nats_url, exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
                delay = min(5.0, delay * 2)
        return None

    async def _report_queue_depth(self) -> None:
        while True:
            for name, ctl in self._controllers.items():
                self.metrics.queue_depth.labels(name).set(len(ctl.queue))
            await asyncio.sleep(1.0)

    # ------------------------------------------------------------------ wiring

    def _build_context(self, kube: client.KubeClient, nc: Any) -> context.Context:
        cfg = self.settings
        ns = cfg.namespace

        def informer(res: rest_paths.Resource, namespace: str | None = ns) -> informing.Informer:
            return informing.Informer(kube, res, namespace, resync_s=cfg.reconciling.resync_s)

        infs = context.Informers(
            hosts=informer(rest_paths.HOSTS, cfg.hosts.namespace),
            workloads=informer(rest_paths.WORKLOADS),
            replicasets=informer(rest_paths.REPLICASETS),
            deployments=informer(rest_paths.DEPLOYMENTS),
            artifacts=informer(rest_paths.ARTIFACTS),
            configmaps=informer(rest_paths.CONFIGMAPS),
            secrets=informer(rest_paths.SECRETS),
        )
        infs.workloads.add_index(replicasets.OWNER_INDEX, owners.owner_uids)
        infs.replicasets.add_index(replicasets.OWNER_INDEX, owners.owner_uids)
        book = assignments.Assignments()
        registry = hostregistry.HostRegistry(cfg.hosts, self.metrics, self._host_changed)
        ctx = context.Context(
            settings=cfg, kube=kube, nats=nc, informers=infs, registry=registry, assignments=book,
            recorder=events.EventRecorder(kube), metrics=self.metrics,
        )
        self.ctx = ctx
        for kind in ("workloads", "replicasets", "deployments", "artifacts"):
            ctx.readers[kind] = freshness.FreshReader(kube, getattr(infs, kind))
        n = cfg.reconciling.concurrency
        self._workloads = workloads.WorkloadController(ctx)
        self._deployments = deployments.DeploymentController(ctx)
        self._artifacts = artifacts.ArtifactController(ctx)
        replica_sets = replicasets.ReplicaSetController(ctx)
        recs: dict[str, tuple[Callable[[str], Awaitable[float | None]], int]] = {
            "hosts": (hosts.HostController(ctx).reconcile, n.hosts),
            "workloads": (self._workloads.reconcile, n.workloads),
            "replicasets": (replica_sets.reconcile, n.replicasets),
            "deployments": (self._deployments.reconcile, n.deployments),
            "artifacts": (self._artifacts.reconcile, n.artifacts),
        }
        for name, (reconcile, workers) in recs.items():
            ctl = running.Controller(name, reconcile, concurrency=workers, observe=self.metrics.observe_reconcile)
            self._controllers[name] = ctl
            ctx.enqueue[name] = ctl.queue.add

        q = ctx.enqueue
        wls = self._workloads
        infs.hosts.add_handler(owners.enqueue_self(q["hosts"]))
        infs.workloads.add_handler(wls.enqueue_self(q["workloads"]))
        infs.workloads.add_handler(owners.enqueue_owner("WorkloadReplicaSet", q["replicasets"],
                                                        replicasets.what_the_owner_reads))
        infs.workloads.add_handler(wls.track)
        infs.workloads.add_handler(self._deployments.workload_gone)
        infs.replicasets.add_handler(replica_sets.enqueue_self(q["replicasets"]))
        infs.replicasets.add_handler(owners.enqueue_owner("WorkloadDeployment", q["deployments"]))
        infs.deployments.add_handler(self._deployments.enqueue_self(q["deployments"]))
        infs.artifacts.add_handler(owners.enqueue_self(q["artifacts"]))
        infs.artifacts.add_handler(self._deployments.artifact_changed)
        infs.artifacts.add_handler(lambda _e, o: wls.source_changed("Artifact", o))
        infs.configmaps.add_handler(lambda _e, o: wls.source_changed("ConfigMap", o))
        infs.secrets.add_handler(lambda _e, o: wls.source_changed("Secret", o))
        infs.secrets.add_handler(self._artifacts.secret_changed)
        return ctx

    def _host_changed(self, host_id: str, judgement_changed: bool) -> None:
        """A host's record changed: update its Host object; if its judgement changed, the Workload
        controller moves workloads off it or gives waiting ones a chance on it."""
        ctx = self.ctx
        if ctx is None:
            return
        hosts_ns = self.settings.hosts.namespace
        if not host_id:  # a grace period ended: look at everything again
            for obj in ctx.informers.hosts.list():
                ctx.enqueue["hosts"](rest_paths.key_of(obj))
            for obj in ctx.informers.workloads.list():
                ctx.enqueue["workloads"](rest_paths.key_of(obj))
            return
        rec = ctx.registry.record(host_id)
        if rec is not None:
            ctx.enqueue["hosts"](f"{hosts_ns}/{rec.name}")
        if judgement_changed:
            self._workloads.host_judged(host_id)
            if ctx.registry.liveness(host_id) is hostregistry.Liveness.ALIVE and self.settings.reconciling.rebalance:
                # New room: replica sets piled on fewer hosts may spread out (one move at a time).
                for obj in ctx.informers.replicasets.list():
                    ctx.enqueue["replicasets"](rest_paths.key_of(obj))
