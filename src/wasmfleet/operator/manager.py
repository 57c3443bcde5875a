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

from wasmfleet.api import models
from wasmfleet.bus import requests
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
    startrequests,
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
        self._references: dict[str, startrequests.References] = {}  # workload key -> references

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
            return informing.Informer(kube, res, namespace, resync_s=300.0)

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
        for kind in ("workloads", "replicasets", "deployments"):
            ctx.readers[kind] = freshness.FreshReader(kube, getattr(infs, kind))
        concurrency = cfg.reconciling.concurrency
        self._workload_ctl = workloads.WorkloadController(ctx)
        recs: dict[str, tuple[Callable[[str], Awaitable[float | None]], int]] = {
            "hosts": (hosts.HostController(ctx).reconcile, 4),
            "workloads": (self._workload_ctl.reconcile, concurrency),
            "replicasets": (replicasets.ReplicaSetController(ctx).reconcile, 16),
            "deployments": (deployments.DeploymentController(ctx).reconcile, 16),
            "artifacts": (artifacts.ArtifactController(ctx).reconcile, 2),
        }
        for name, (reconcile, n) in recs.items():
            ctl = running.Controller(name, reconcile, concurrency=n, observe=self.metrics.observe_reconcile)
            self._controllers[name] = ctl
            ctx.enqueue[name] = ctl.queue.add

        q = ctx.enqueue
        infs.hosts.add_handler(owners.enqueue_self(q["hosts"]))
        infs.workloads.add_handler(owners.enqueue_self(q["workloads"]))
        infs.workloads.add_handler(owners.enqueue_owner("WorkloadReplicaSet", q["replicasets"]))
        infs.workloads.add_handler(self._track_workload)
        infs.replicasets.add_handler(owners.enqueue_self(q["replicasets"]))
        infs.replicasets.add_handler(owners.enqueue_owner("WorkloadDeployment", q["deployments"]))
        infs.deployments.add_handler(owners.enqueue_self(q["deployments"]))
        infs.artifacts.add_handler(owners.enqueue_self(q["artifacts"]))
        infs.artifacts.add_handler(self._artifact_changed)
        infs.configmaps.add_handler(lambda _e, o: self._source_changed("ConfigMap", o))
        infs.secrets.add_handler(lambda _e, o: self._source_changed("Secret", o))
        return ctx

    def _track_workload(self, event: str, obj: client.Obj) -> None:
        """Keep the assignment book and the reference index current from Workload events."""
        assert self.ctx is not None
        meta = obj["metadata"]
        key = rest_paths.key_of(obj)
        uid = meta.get("uid", "")
        if event == "DELETED":
            self.ctx.assignments.drop(uid)
            self._references.pop(key, None)
            self._workload_ctl.forget(uid)
            return
        host_id = (obj.get("status") or {}).get("hostId")
        if host_id:  # only add: a stale event without hostId must not erase a fresh placement
            owner = owners.controller_of(obj, "WorkloadReplicaSet")
            self.ctx.assignments.set(uid, host_id, str(owner["uid"]) if owner else "", key)
        try:
            spec = models.WorkloadSpec.model_validate(obj.get("spec") or {})
            self._references[key] = startrequests.references(spec)
        except ValueError:
            self._references.pop(key, None)

    def _source_changed(self, kind: str, obj: client.Obj) -> None:
        ns = obj["metadata"].get("namespace")
        name = obj["metadata"]["name"]
        for key, refs in list(self._references.items()):
            if not key.startswith(f"{ns}/"):
                continue
            names = refs.config_maps if kind == "ConfigMap" else refs.secrets
            if name in names:
                self.ctx.enqueue["workloads"](key)  # type: ignore[union-attr]

    def _artifact_changed(self, _event: str, obj: client.Obj) -> None:
        assert self.ctx is not None
        ns = obj["metadata"].get("namespace")
        name = obj["metadata"]["name"]
        for wd in self.ctx.informers.deployments.list(ns):
            if name in deployments.referenced_artifacts(wd):
                self.ctx.enqueue["deployments"](rest_paths.key_of(wd))
        for key, refs in list(self._references.items()):
            if key.startswith(f"{ns}/") and name in refs.artifacts:
                self.ctx.enqueue["workloads"](key)

    def _host_changed(self, host_id: str, judgement_changed: bool) -> None:
        """A host's record changed: update its Host object; if its judgement changed, move workloads
        off a dead host or give waiting workloads a chance on a newly alive one."""
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
        if not judgement_changed:
            return
        live = ctx.registry.liveness(host_id)
        if live is hostregistry.Liveness.DEAD:
            for key in ctx.assignments.keys_on(host_id):
                ctx.enqueue["workloads"](key)
        elif live is hostregistry.Liveness.ALIVE:
            # New capacity: retry workloads still waiting for a host.
            for obj in ctx.informers.workloads.list():
                status = obj.get("status") or {}
                if not status.get("hostId"):
                    ctx.enqueue["workloads"](rest_paths.key_of(obj))
            evicted = self._workload_ctl.evicted.pop(host_id, set())
            if evicted:
                self._spawn(self._stop_evicted(host_id, evicted))

    async def _stop_evicted(self, host_id: str, uids: set[str]) -> None:
        """A host judged dead came back: stop the workloads that were moved away meanwhile."""
        for uid in uids:
            current = self.ctx.assignments.get(uid) if self.ctx else None
            if current is not None and current.host_id == host_id:
                continue  # placed back here since
            try:
                await self._workload_ctl.stop(host_id, uid)
                log.info("stopped workload %s on returning host %s (it runs elsewhere now)", uid, host_id)
            except requests.BusError as exc:
                log.warning("could not stop workload %s on returning host %s: %s", uid, host_id, exc)
