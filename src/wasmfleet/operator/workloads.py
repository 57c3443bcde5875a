"""The Workload controller: resolve, choose a host, start there, keep it running.

Conditions, in upstream's order, one method each: Config (references resolved) > HostSelection (a
host chosen) > Placement (workload.start accepted) > Sync (the host confirms it runs) > Ready. Each
reconcile re-reads the Workload and walks these steps; a step that cannot complete records why and
stops the walk.

Failover: when the chosen host is judged DEAD, the workload is placed afresh on another host in the
same reconcile. UNKNOWN judgements (operator's own bus down, just started) never move anything.
Adoption: after an operator restart a placed workload is asked about (workload.status) and left
alone when its host says it runs the same configuration (the fingerprint annotation tells).

The controller also keeps what the other parts need to find Workloads: the assignment book (which
workload runs where, for the scheduler) and the reference index (which Workloads name a ConfigMap,
Secret or Artifact), fed from Workload events, and reacts to host judgements.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any

from wasmfleet.api import conditions, groups, models
from wasmfleet.bus import messages
from wasmfleet.kube import client, owners, rest_paths, running
from wasmfleet.operator import context, hostcalls, hostregistry, reconciling, scheduling, startrequests
from wasmfleet.scheduler import placement

log = logging.getLogger(__name__)

CONDITIONS = ("Config", "HostSelection", "Placement", "Sync", "Ready")
FINGERPRINT_ANNOTATION = f"{groups.GROUP}/start-fingerprint"
# Placement reason when the host reported a start failure retrying cannot fix (retryable=False,
# e.g. an image that does not exist): no new start until the Workload or its configuration changes.
START_FAILED_PERMANENTLY = "StartFailedPermanently"
Liveness = hostregistry.Liveness
Stop = reconciling.Stop
State = messages.WorkloadState


@dataclass
class Confirmed:
    host_id: str
    fingerprint: str
    at: float  # monotonic time the host last confirmed RUNNING


def sources_for(ctx: context.Context, namespace: str, refs: startrequests.References) -> startrequests.Sources:
    """Fetch referenced objects from the informer caches (missing ones are simply absent)."""
    inf = ctx.informers
    cms: dict[str, dict[str, str]] = {}
    for name in refs.config_maps:
        cm = inf.configmaps.get(f"{namespace}/{name}")
        if cm is not None:
            cms[name] = {str(k): str(v) for k, v in (cm.get("data") or {}).items()}
    secrets: dict[str, dict[str, str]] = {}
    for name in refs.secrets:
        secret = inf.secrets.get(f"{namespace}/{name}")
        if secret is not None:
            secrets[name] = startrequests.decode_secret(secret)
    artifacts: dict[str, str] = {}
    for name in refs.artifacts:
        art = inf.artifacts.get(f"{namespace}/{name}")
        url = ((art or {}).get("status") or {}).get("artifactUrl")
        if url:
            artifacts[name] = str(url)
    return startrequests.Sources(cms, secrets, artifacts)


@dataclass
class Pass:
    """One reconcile of one Workload: what the steps share while they build its status."""

    obj: client.Obj
    wl: models.Workload
    conds: reconciling.Conditions
    uid: str
    key: str
    group: str  # the owning ReplicaSet's uid ("" for a standalone Workload)
    req: messages.WorkloadStartRequest = field(default_factory=messages.WorkloadStartRequest)
    fingerprint: str = ""
    # What the host last said about the workload (RUNNING, STARTING, ...), and when to look again.
    observed: State = State.UNSPECIFIED
    observed_message: str = ""
    waiting: str = "waiting for the host to report RUNNING"  # why not Ready yet, while starting
    events: list[tuple[str, str, str]] = field(default_factory=list)  # (type, reason, message) to record
    after: float | None = None

    @property
    def status(self) -> models.WorkloadStatus:
        return self.wl.status

    @property
    def host_id(self) -> str:
        return self.wl.status.host_id or ""


SERVICE_WATCHED = frozenset({messages.ServiceState.RUNNING, messages.ServiceState.RESTARTING})
"""Service states that may change without a new start (asked about at service_sync_interval_s)."""


def service_status(reported: messages.ServiceStatus | None) -> models.ServiceStatus | None:
    """The host's report of a workload's service, as Workload.status.service."""
    if reported is None:
        return None
    ended = reported.last_exit_time
    return models.ServiceStatus(
        state=reported.state, restart_count=reported.restart_count, max_restarts=reported.max_restarts,
        last_exit_code=reported.last_exit_code, last_error=reported.last_error or None,
        last_exit_time=ended.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if ended is not None else None,
        message=reported.message or None,
    )


def service_down(service: models.ServiceStatus | None) -> tuple[str, str] | None:
    """(reason, message) of Ready=False when the service is down, naming its last error; None when
    it runs or completed (a clean exit is not a failure)."""
    if service is None:
        return None
    error = service.last_error or f"exit code {service.last_exit_code}"
    if service.state == messages.ServiceState.RESTARTING:
        return ("ServiceRestarting", f"service is down: {error}; restart {service.restart_count + 1} of "
                                     f"{service.max_restarts} pending (backoff)")
    if service.state == messages.ServiceState.FAILED:
        return ("ServiceFailed", f"service failed: {error}; not restarted: maxRestarts ({service.max_restarts}) "
                                 f"reached after {service.restart_count} restarts")
    return None


def service_note(service: models.ServiceStatus | None) -> str:
    if service is None or service.state != messages.ServiceState.COMPLETED:
        return ""
    return "; its service completed (exit code 0)"


class WorkloadController(reconciling.Reconciler[models.Workload]):
    kind, resource, cache, model = "Workload", rest_paths.WORKLOADS, "workloads", models.Workload

    def __init__(self, ctx: context.Context) -> None:
        super().__init__(ctx)
        self.calls = hostcalls.HostCalls(ctx)
        # Workload ID -> what its host last confirmed (this process's memory; rebuilt by asking).
        self.confirmed: dict[str, Confirmed] = {}
        # Workload ID -> (consecutive failed starts, monotonic time before which not to start again).
        # Other events (its own status write, heartbeats) trigger reconciles sooner; they wait.
        self.start_failures: dict[str, tuple[int, float]] = {}
        # host ID -> (heartbeat time, consecutive heartbeats reporting more workloads than placed).
        self._surplus: dict[str, tuple[float, int]] = {}
        self._references: dict[str, startrequests.References] = {}  # workload key -> what it names
        self._references_of: dict[str, tuple[str, Any]] = {}  # workload key -> (uid, generation) indexed

    # ------------------------------------------------------------------ what other events mean here

    def track(self, event: str, obj: client.Obj) -> None:
        """Keep the assignment book and the reference index current from Workload events."""
        meta = obj["metadata"]
        key = rest_paths.key_of(obj)
        uid = meta.get("uid", "")
        if event == "DELETED":
            self.ctx.assignments.drop(uid)
            self._references.pop(key, None)
            self._references_of.pop(key, None)
            self.forget(uid)
            return
        host_id = (obj.get("status") or {}).get("hostId")
        if host_id:  # only add: a stale event without hostId must not erase a fresh placement
            owner = owners.controller_of(obj, "WorkloadReplicaSet")
            self.ctx.assignments.set(uid, host_id, str(owner["uid"]) if owner else "", key)
        generation = meta.get("generation")
        if generation is not None and self._references_of.get(key) == (uid, generation):
            return  # a status or metadata change: the spec, and so what it names, is the same
        try:
            spec = models.WorkloadSpec.model_validate(obj.get("spec") or {})
            self._references[key] = startrequests.references(spec)
            self._references_of[key] = (uid, generation)
        except ValueError:
            self._references.pop(key, None)
            self._references_of.pop(key, None)

    def source_changed(self, kind: str, obj: client.Obj) -> None:
        """A ConfigMap, Secret or Artifact changed: look again at the Workloads that name it."""
        ns = obj["metadata"].get("namespace")
        name = obj["metadata"]["name"]
        for key, refs in list(self._references.items()):
            if not key.startswith(f"{ns}/"):
                continue
            names = {"ConfigMap": refs.config_maps, "Secret": refs.secrets}.get(kind, refs.artifacts)
            if name in names:
                self.ctx.enqueue["workloads"](key)

    def host_judged(self, host_id: str) -> None:
        """A host's judgement changed: move workloads off a dead host, or give waiting workloads a
        chance on a newly alive one."""
        ctx = self.ctx
        live = ctx.registry.liveness(host_id)
        if live is Liveness.DEAD:
            for key in ctx.assignments.keys_on(host_id):
                ctx.enqueue["workloads"](key)
        elif live is Liveness.ALIVE:
            for obj in ctx.informers.workloads.list():
                status = obj.get("status") or {}
                # Waiting for a host, or being deleted and waiting for this one to answer.
                if not status.get("hostId") or (
                    obj["metadata"].get("deletionTimestamp") and status.get("hostId") == host_id
                ):
                    ctx.enqueue["workloads"](rest_paths.key_of(obj))

    # ------------------------------------------------------------------ copies nobody placed

    async def audit_hosts(self) -> None:
        """Stop workloads that hosts run but that are not placed there (level-triggered).

        A host that was partitioned, or judged dead and back, may still run workloads that were
        placed elsewhere meanwhile; a new leader has no memory of any of that. So each host's
        heartbeat workloadCount is compared with the workloads placed on it; when a host reports
        more for two heartbeats in a row (one heartbeat may predate a stop that just succeeded), the
        host is asked (workload.status) about every other known Workload, and those it runs are
        stopped. Runs while this process leads."""
        period = self.ctx.settings.reconciling.audit_interval_s
        while True:
            await asyncio.sleep(period)
            for host_id in self._hosts_with_surplus():
                try:
                    await self.audit(host_id)
                except Exception as exc:  # one host's failure must not stop the others' audits
                    log.warning("auditing host %s: %s", host_id, exc)

    def _hosts_with_surplus(self) -> list[str]:
        ctx = self.ctx
        due = []
        surplus = scheduling.hosts_running_unplaced(ctx.registry, ctx.assignments)
        for host_id in list(self._surplus):
            if host_id not in surplus:
                del self._surplus[host_id]
        for host_id in surplus:
            rec = ctx.registry.record(host_id)
            if rec is None:
                continue
            seen_at, streak = self._surplus.get(host_id, (0.0, 0))
            if rec.last_seen != seen_at:
                streak += 1
                self._surplus[host_id] = (rec.last_seen, streak)
            if streak >= 2:
                due.append(host_id)
        return due

    async def audit(self, host_id: str) -> int:
        """Ask `host_id` about every known Workload not placed on it and stop those it runs;
        returns how many were stopped."""
        ctx = self.ctx
        placed_here = set(ctx.assignments.uids_on(host_id))
        others = {str(o["metadata"].get("uid") or "") for o in ctx.informers.workloads.list()} - placed_here
        others.discard("")
        limit = asyncio.Semaphore(16)

        async def check(uid: str) -> bool:
            async with limit:
                state = await self.calls.status(host_id, uid)
                if state.workload_state in (State.NOT_FOUND, State.UNSPECIFIED, State.COMPLETED):
                    return False
                current = ctx.assignments.get(uid)
                if current is not None and current.host_id == host_id:
                    return False  # placed here meanwhile
                await self.calls.stop(host_id, uid)
                log.info("stopped workload %s on host %s: it is not placed there", uid, host_id)
                return True

        results = await asyncio.gather(*(check(uid) for uid in sorted(others)), return_exceptions=True)
        stopped = sum(1 for r in results if r is True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            log.info("auditing host %s: %d requests failed (first: %s)", host_id, len(errors), errors[0])
        self._surplus.pop(host_id, None)
        rec = ctx.registry.record(host_id)
        if not errors and not stopped and rec is not None:
            log.warning("host %s reports %d workloads, %d placed there; the others are unknown here (deleted "
                        "while the host was unreachable?)", host_id, rec.heartbeat.workload_count, len(placed_here))
        return stopped

    def forget(self, uid: str) -> None:
        """The Workload is gone: drop what this process remembered about it."""
        self.confirmed.pop(uid, None)
        self.start_failures.pop(uid, None)

    # ------------------------------------------------------------------ reconcile

    async def converge(self, obj: client.Obj, wl: models.Workload) -> float | None:
        ctx = self.ctx
        if groups.FINALIZER_WORKLOAD not in wl.metadata.finalizers:
            # Workloads made by a ReplicaSet carry it from birth; standalone ones get it here.
            obj = self.wrote(await ctx.kube.patch(
                rest_paths.WORKLOADS, wl.metadata.namespace, wl.metadata.name or "",
                {"metadata": {"finalizers": [*wl.metadata.finalizers, groups.FINALIZER_WORKLOAD]}},
            ))
        owner = owners.controller_of(obj, "WorkloadReplicaSet")
        p = Pass(
            obj=obj, wl=wl, uid=wl.metadata.uid or "", key=f"{wl.metadata.namespace}/{wl.metadata.name}",
            conds=reconciling.Conditions(wl.status.conditions, CONDITIONS, wl.metadata.generation),
            group=str(owner["uid"]) if owner else "",
        )
        p.status.workload_id = p.uid  # the status was freshly parsed: ours to change
        try:
            return await reconciling.run_steps(
                (self.config, self.host_selection, self.placement, self.sync, self.ready), p)
        finally:
            await self.write_status(p.obj, p.status)
            ctx.assignments.set(p.uid, p.status.host_id, p.group, p.key)
            for type_, reason, message in p.events:
                await ctx.recorder.record(p.obj, type_, reason, message)

    async def _event(self, p: Pass, type_: str, reason: str, message: str) -> None:
        """Recorded once the status is written: an Event is an API write too, and one in the middle
        of a failover would delay the start on the new host."""
        p.events.append((type_, reason, message))

    # ---- Config

    async def config(self, p: Pass) -> Stop | None:
        """Resolve ConfigMaps, Secrets, Artifacts and pull secrets into the start request."""
        try:
            refs = startrequests.references(p.wl.spec)
            p.req = startrequests.build(p.wl, sources_for(self.ctx, p.wl.metadata.namespace or "", refs))
        except startrequests.MissingReference as exc:
            p.conds.set_from("Config", "False", "MissingReference", str(exc))
            await self._event(p, "Warning", "MissingReference", str(exc))
            return Stop(self.ctx.settings.reconciling.unschedulable_retry_s)
        p.fingerprint = startrequests.fingerprint(p.req)
        p.conds.set("Config", "True", "Resolved", "configuration and references resolved")
        return None

    # ---- HostSelection

    async def host_selection(self, p: Pass) -> Stop | None:
        """Keep the host while it is alive and suitable; otherwise choose one (pure scheduler)."""
        ctx = self.ctx
        host_id = p.host_id
        if host_id:
            live = ctx.registry.liveness(host_id)
            if live is Liveness.UNKNOWN:
                return Stop(max(0.5, ctx.registry.grace_remaining() + 0.1))  # cannot judge yet: change nothing
            if live is Liveness.DEAD:
                await self._leave_dead_host(p, host_id)
            elif (unfit := self._no_longer_fits(p, host_id)) is not None:
                # The spec (hostSelector, environment, interfaces, pin) or the host's labels changed.
                message = f"host {unfit.host} no longer suitable ({unfit.filter}: {unfit.reason}); moving"
                with contextlib.suppress(*hostcalls.FAILURES):
                    await self.calls.stop(host_id, p.uid)
                self.confirmed.pop(p.uid, None)
                p.conds.set_from("HostSelection", "False", "HostNoLongerSuitable", message)
                p.status.host_id = None
                await self._event(p, "Normal", "Rescheduling", message)
        if p.host_id:
            if p.conds.status_of("HostSelection") != "True":
                p.conds.set("HostSelection", "True", "HostSelected", f"host {p.host_id}")
            return None
        if ctx.registry.grace_remaining() > 0:
            # Just (re)connected: hosts have not all reported yet, so a decision now would be
            # made on a partial fleet (everything on the first host heard, or "no host").
            return Stop(ctx.registry.grace_remaining() + 0.05)
        decision = placement.choose(
            scheduling.requirements(p.key, p.wl.spec, p.group),
            scheduling.host_candidates(ctx.registry, ctx.assignments),
            self._group_counts_by_name(p.group),
        )
        if decision.host is None:
            ctx.metrics.placements.labels("unschedulable").inc()
            message = decision.explain()
            p.conds.set_from("HostSelection", "False", "NoSuitableHost", message)
            await self._event(p, "Warning", "FailedScheduling", message)
            return Stop(ctx.settings.reconciling.unschedulable_retry_s)
        p.status.host_id = decision.host.host_id
        p.status.environment = decision.host.environment or None
        ctx.assignments.set(p.uid, p.status.host_id, p.group, p.key)
        p.conds.set("HostSelection", "True", "HostSelected", f"host {decision.host.name} ({decision.host.host_id})")
        return None

    async def _leave_dead_host(self, p: Pass, host_id: str) -> None:
        # Not written on its own: the new host is recorded (with these conditions) before the start
        # on it, or the final status says why there is none; one API write fewer on the failover path.
        self.ctx.metrics.failovers.inc()
        self.confirmed.pop(p.uid, None)
        message = f"host {host_id} stopped reporting; placing the workload elsewhere"
        p.conds.set_from("HostSelection", "False", "HostNotReady", message)
        p.status.host_id = None
        await self._event(p, "Normal", "Rescheduling", message)

    def _no_longer_fits(self, p: Pass, host_id: str) -> placement.Exclusion | None:
        host = next((h for h in scheduling.host_candidates(self.ctx.registry, self.ctx.assignments)
                     if h.host_id == host_id), None)
        if host is None:
            return None
        return placement.still_fits(scheduling.requirements(p.key, p.wl.spec, p.group), host)

    def _group_counts_by_name(self, group: str) -> dict[str, int]:
        out: dict[str, int] = {}
        for host_id, n in self.ctx.assignments.group_counts(group).items():
            rec = self.ctx.registry.record(host_id)
            if rec is not None:
                out[rec.name] = n
        return out

    # ---- Placement

    async def placement(self, p: Pass) -> Stop | None:
        """Make sure the host runs this configuration: trust a recent confirmation, else ask the host
        when it had the workload before (adoption after a restart), else start it there."""
        host_id = p.host_id
        now = time.monotonic()
        confirmed = self.confirmed.get(p.uid)
        interval = self._sync_interval(p)
        if (
            confirmed
            and (confirmed.host_id, confirmed.fingerprint) == (host_id, p.fingerprint)
            and now - confirmed.at < interval
        ):
            self._observe_running(p, interval - (now - confirmed.at))
            return None
        previous_fp = p.wl.metadata.annotations.get(FINGERPRINT_ANNOTATION)
        # Placed here before (by this process, or by an earlier one: the Placement condition and
        # the fingerprint annotation survive restarts): ask the host before starting anything.
        was_here = (confirmed is not None and confirmed.host_id == host_id) or (
            p.conds.status_of("Placement") == "True" and previous_fp is not None
        )
        if was_here:
            try:
                state = await self.calls.status(host_id, p.uid)
            except hostcalls.HostGone:
                return Stop(0.0)  # judged dead meanwhile: the next reconcile places it elsewhere at once
            except hostcalls.FAILURES as exc:
                log.info("workload %s: status from host %s: %s", p.key, host_id, exc)
                return Stop(1.0)  # host judged alive but did not answer: ask again soon, change nothing
            running_here = state.workload_state in (State.RUNNING, State.STARTING)
            same_config = previous_fp == p.fingerprint or (confirmed and confirmed.fingerprint == p.fingerprint)
            if running_here and same_config:
                if state.workload_state is State.STARTING:
                    p.observed, p.after = State.STARTING, 1.0
                    p.observed_message = state.message or "host is starting the workload"
                    p.waiting = "host is starting the workload"
                    return None
                self.confirmed[p.uid] = Confirmed(host_id, p.fingerprint, now)
                self._observe_running(p, None, state)
                p.after = self._sync_interval(p)
                return None
            if running_here:
                # The configuration changed (ConfigMap, Secret, artifact): restart with the new one.
                await self.calls.stop(host_id, p.uid)
                await self._event(p, "Normal", "Restarting", "configuration changed; restarting on the same host")
        if self._failed_permanently(p):
            return Stop(None)  # the host said retrying cannot help; the object has not changed since
        wait = self.start_failures.get(p.uid, (0, 0.0))[1] - now
        if wait > 0:
            return Stop(wait)  # backing off after a failed start: not before then
        return await self._start(p)

    def _failed_permanently(self, p: Pass) -> bool:
        """The last start on this host failed for good (the host said so: retryable=False) and
        neither the Workload's spec (generation) nor its resolved configuration changed since."""
        cond = conditions.get_condition(p.conds.list, "Placement")
        return (
            cond is not None
            and cond.reason == START_FAILED_PERMANENTLY
            and cond.observed_generation == p.wl.metadata.generation
            and p.wl.metadata.annotations.get(FINGERPRINT_ANNOTATION) == p.fingerprint
        )

    async def _start(self, p: Pass) -> Stop | None:
        ctx, host_id = self.ctx, p.host_id
        p.req.workload.annotations[FINGERPRINT_ANNOTATION] = p.fingerprint
        if p.wl.metadata.annotations.get(FINGERPRINT_ANNOTATION) != p.fingerprint:
            # Recorded before starting: the host never runs a configuration the object does not
            # name (a changed one is stopped before this start), so adoption can trust it.
            meta = p.obj["metadata"]
            p.obj = self.wrote(await ctx.kube.patch(
                rest_paths.WORKLOADS, meta.get("namespace"), meta["name"],
                {"metadata": {"annotations": {FINGERPRINT_ANNOTATION: p.fingerprint}}}))
        if (p.obj.get("status") or {}).get("hostId") != host_id:
            # Record the choice before asking the host (a pull may take a while, and an operator
            # that dies meanwhile must find this host on restart instead of starting a second copy).
            p.conds.set("Placement", "Unknown", "Starting", f"starting on host {host_id}")
            written = await self.write_status(p.obj, p.status)
            if written is not None:
                p.obj = written
        try:
            state = await self.calls.start(host_id, p.req)
        except hostcalls.HostGone:
            return Stop(0.0)  # judged dead during the start: the next reconcile places it elsewhere
        except hostcalls.CallFailed as exc:
            ctx.metrics.placements.labels("start_failed").inc()
            delay = self._backoff(p.uid)
            p.conds.set("Placement", "False", "HostUnreachable", f"{exc} (retried with backoff)")
            p.conds.set("Sync", "Unknown", "HostUnreachable", str(exc))
            p.conds.set("Ready", "False", "HostUnreachable", str(exc))
            raise running.TemporaryError(f"start on host {host_id}: {exc}", delay=delay) from exc
        except hostcalls.CallRefused as exc:
            state = messages.WorkloadStatus(workload_id=p.uid, workload_state=State.ERROR, message=str(exc))
        if state.workload_state is State.ERROR:
            ctx.metrics.placements.labels("start_failed").inc()
            message = state.message or "host reported an error"
            await self._event(p, "Warning", "StartFailed", f"host {host_id}: {message}")
            if not state.retryable:
                p.conds.set_from("Placement", "False", START_FAILED_PERMANENTLY,
                                 f"{message} (not retried until the Workload changes)")
                raise running.PermanentError(f"start on host {host_id}: {message}")
            delay = self._backoff(p.uid)
            p.conds.set_from("Placement", "False", "StartFailed", f"{message} (retried with backoff)")
            raise running.TemporaryError(f"start on host {host_id}: {message}", delay=delay)
        ctx.metrics.placements.labels("placed").inc()
        self.start_failures.pop(p.uid, None)
        if state.workload_state is State.RUNNING:
            self.confirmed[p.uid] = Confirmed(host_id, p.fingerprint, time.monotonic())
            self._observe_running(p, None, state)
            return None
        p.conds.set("Placement", "True", "Started", f"start accepted by host {host_id}")
        p.observed, p.after = state.workload_state, 0.5
        p.observed_message = state.message or f"host reports {state.workload_state.name}"
        return None

    def _observe_running(self, p: Pass, after: float | None, reported: messages.WorkloadStatus | None = None) -> None:
        """`reported`: the host's status of the workload, when just asked (its component list is
        copied; without it, the last one copied stays)."""
        if reported is not None:
            p.status.components = [
                models.ComponentStatus(name=c.name, role=c.role, state=c.state, message=c.message or None)
                for c in reported.components
            ]
            p.status.service = service_status(reported.service)
        p.observed, p.after = State.RUNNING, after
        p.conds.set("Placement", "True", "Started", f"running on host {p.host_id}")

    def _sync_interval(self, p: Pass) -> float:
        """How long a confirmation that the workload runs is trusted: shorter while its service
        runs or restarts (see Reconciling.service_sync_interval_s)."""
        settings = self.ctx.settings.reconciling
        service = p.status.service
        if p.wl.spec.service is not None and (service is None or service.state in SERVICE_WATCHED):
            return min(settings.service_sync_interval_s, settings.sync_interval_s)
        return settings.sync_interval_s

    def _backoff(self, uid: str) -> float:
        n = self.start_failures.get(uid, (0, 0.0))[0] + 1
        settings = self.ctx.settings.reconciling
        delay = float(min(settings.start_backoff_max_s, settings.start_backoff_s * 2 ** (n - 1)))
        self.start_failures[uid] = (n, time.monotonic() + delay)
        return delay

    # ---- Sync and Ready

    async def sync(self, p: Pass) -> Stop | None:
        """What the host reports: running, or still starting."""
        if p.observed is State.RUNNING:
            p.conds.set("Sync", "True", "Running", "host reports the workload running")
        else:
            p.conds.set("Sync", "Unknown", "Starting", p.observed_message)
        return None

    async def ready(self, p: Pass) -> Stop | None:
        """Ready once the host reports it running and its service (if any) is not down; look again
        at the next sync (or sooner)."""
        if p.observed is State.RUNNING:
            down = service_down(p.status.service) if p.wl.spec.service is not None else None
            if down is not None:
                p.conds.set("Ready", "False", *down)
            else:
                p.conds.set("Ready", "True", "Ready", "workload is running" + service_note(p.status.service))
        else:
            p.conds.set("Ready", "False", "Starting", p.waiting)
        return Stop(p.after)

    # ------------------------------------------------------------------ deletion

    async def finalize(self, obj: client.Obj) -> float | None:
        """Stop the workload on its host, then let the object go."""
        ctx = self.ctx
        meta = obj["metadata"]
        uid = str(meta.get("uid") or "")
        host_id = (obj.get("status") or {}).get("hostId")
        if host_id:
            live = ctx.registry.liveness(host_id)
            if live is Liveness.UNKNOWN:
                raise running.TemporaryError(f"cannot judge host {host_id} yet; the workload is stopped there later")
            if live is Liveness.DEAD:
                rec = ctx.registry.record(host_id)
                if rec is not None and not (rec.superseded or rec.leaving):
                    # It may come back still running the workload, which would then be nameable by
                    # nobody: keep the object (and its uid) until the host answers or is forgotten.
                    return max(1.0, ctx.settings.reconciling.unschedulable_retry_s)
            else:
                try:
                    await self.calls.stop(host_id, uid)
                except hostcalls.CallFailed as exc:
                    if not exc.no_responders:  # no responders: the host is gone, nothing left to stop
                        raise
        # A host back from a partition may run a copy of this workload; once the object is gone
        # nobody could name it, so hosts reporting copies nobody placed are told to stop it too.
        for other in scheduling.hosts_running_unplaced(ctx.registry, ctx.assignments):
            if other != host_id:
                with contextlib.suppress(*hostcalls.FAILURES):
                    await self.calls.stop(other, uid)
        present = list(meta.get("finalizers") or [])
        finalizers = [f for f in present if f != groups.FINALIZER_WORKLOAD]
        if finalizers != present:
            await ctx.kube.patch(rest_paths.WORKLOADS, meta.get("namespace"), meta["name"],
                                 {"metadata": {"finalizers": finalizers or None}})
        self.forget(uid)
        ctx.assignments.drop(uid)
        return None
