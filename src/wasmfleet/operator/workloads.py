"""The Workload controller: resolve, choose a host, start there, keep it running.

Conditions, in upstream's order: Config (references resolved) > HostSelection (a host chosen) >
Placement (workload.start accepted) > Sync (the host confirms it runs) > Ready. Each reconcile
re-reads the Workload and walks these steps; a step that cannot complete records why and stops.

Failover: when the chosen host is judged DEAD, the workload is placed afresh on another host in the
same reconcile. UNKNOWN judgements (operator's own bus down, just started) never move anything.
Adoption: after an operator restart a placed workload is asked about (workload.status) and left
alone when its host says it runs the same configuration (the fingerprint annotation tells).
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any

import pydantic

from wasmfleet.api import conditions, groups, models
from wasmfleet.bus import messages, requests, subjects
from wasmfleet.kube import owners, rest_paths, running
from wasmfleet.operator import context, hostregistry, scheduling, startrequests, statuses
from wasmfleet.scheduler import placement

log = logging.getLogger(__name__)

CONDITIONS = ("Config", "HostSelection", "Placement", "Sync", "Ready")
FINGERPRINT_ANNOTATION = f"{groups.GROUP}/start-fingerprint"
Liveness = hostregistry.Liveness


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


class WorkloadController:
    def __init__(self, ctx: context.Context) -> None:
        self._ctx = ctx
        # Workload ID -> what its host last confirmed (this process's memory; rebuilt by asking).
        self.confirmed: dict[str, Confirmed] = {}
        self.start_failures: dict[str, int] = {}  # Workload ID -> consecutive failed starts
        # host ID -> workload IDs moved away from it while it was DEAD: stopped there if it returns.
        self.evicted: dict[str, set[str]] = {}
        self._reader = ctx.readers["workloads"]

    # ------------------------------------------------------------------ entry point

    def forget(self, uid: str) -> None:
        """The Workload is gone: drop what this process remembered about it."""
        self.confirmed.pop(uid, None)
        self.start_failures.pop(uid, None)

    def wrote(self, obj: dict[str, Any]) -> dict[str, Any]:
        return self._reader.wrote(obj)

    async def reconcile(self, key: str) -> float | None:
        ctx = self._ctx
        ns, name = rest_paths.split_key(key)
        obj = await self._reader.read(key)
        if obj is None:
            return None
        try:
            wl = models.Workload.model_validate(obj)
        except pydantic.ValidationError as exc:
            raise running.PermanentError(f"invalid Workload: {exc.errors()[0]['msg']}") from exc
        uid = wl.metadata.uid or ""
        if wl.metadata.deletion_timestamp:
            await self._finalize(obj, wl)
            return None
        if groups.FINALIZER_WORKLOAD not in wl.metadata.finalizers:
            # Workloads made by a ReplicaSet carry it from birth; standalone ones get it here.
            obj = self.wrote(await ctx.kube.patch(
                rest_paths.WORKLOADS, ns, name,
                {"metadata": {"finalizers": [*wl.metadata.finalizers, groups.FINALIZER_WORKLOAD]}},
            ))
        step = _Step(self, ctx, obj, wl)
        try:
            return await step.run()
        finally:
            written = await statuses.write(ctx.kube, rest_paths.WORKLOADS, step.obj, step.status_dict())
            if written is not None:
                self.wrote(written)
            ctx.assignments.set(uid, step.status.host_id, step.group, key)

    # ------------------------------------------------------------------ deletion

    async def _finalize(self, obj: dict[str, Any], wl: models.Workload) -> None:
        ctx = self._ctx
        uid = wl.metadata.uid or ""
        host_id = wl.status.host_id
        if host_id:
            live = ctx.registry.liveness(host_id)
            if live is Liveness.UNKNOWN:
                raise running.RetryLater(f"cannot judge host {host_id} yet; the workload is stopped there later")
            if live is Liveness.DEAD:
                self.evicted.setdefault(host_id, set()).add(uid)  # stopped there if it ever returns
            else:
                with contextlib.suppress(requests.NoResponders):  # host gone: nothing left to stop
                    await self.stop(host_id, uid)
        finalizers = [f for f in wl.metadata.finalizers if f != groups.FINALIZER_WORKLOAD]
        if finalizers != wl.metadata.finalizers:
            meta = obj["metadata"]
            await ctx.kube.patch(rest_paths.WORKLOADS, meta.get("namespace"), meta["name"],
                                 {"metadata": {"finalizers": finalizers or None}})
        self.confirmed.pop(uid, None)
        self.start_failures.pop(uid, None)
        ctx.assignments.drop(uid)

    # ------------------------------------------------------------------ host-side calls

    async def start(self, host_id: str, req: messages.WorkloadStartRequest) -> messages.WorkloadStatus:
        reply = await requests.request(
            self._ctx.nats, subjects.workload_start(host_id), req, messages.WorkloadStartResponse,
            timeout_s=self._ctx.settings.reconciling.start_timeout_s,
        )
        return reply.workload_status

    async def status(self, host_id: str, uid: str) -> messages.WorkloadStatus:
        reply = await requests.request(
            self._ctx.nats, subjects.workload_status(host_id),
            messages.WorkloadStatusRequest(workload_id=uid), messages.WorkloadStatusResponse,
            timeout_s=self._ctx.settings.reconciling.status_timeout_s,
        )
        return reply.workload_status

    async def stop(self, host_id: str, uid: str) -> None:
        await requests.request(
            self._ctx.nats, subjects.workload_stop(host_id),
            messages.WorkloadStopRequest(workload_id=uid), messages.WorkloadStopResponse,
            timeout_s=self._ctx.settings.reconciling.stop_timeout_s,
        )


class _Step:
    """One reconcile of one Workload: the ordered steps, sharing the status being built."""

    def __init__(
        self, ctl: WorkloadController, ctx: context.Context, obj: dict[str, Any], wl: models.Workload
    ) -> None:
        self.ctl, self.ctx, self.obj, self.wl = ctl, ctx, obj, wl
        self.uid = wl.metadata.uid or ""
        self.key = f"{wl.metadata.namespace}/{wl.metadata.name}"
        self.gen = wl.metadata.generation
        self.status = wl.status  # freshly parsed: ours to change
        self.status.workload_id = self.uid
        self.conds = self.status.conditions
        statuses.ensure_order(self.conds, CONDITIONS, self.gen)
        owner = owners.controller_of(obj, "WorkloadReplicaSet")
        self.group = str(owner["uid"]) if owner else ""

    def status_dict(self) -> dict[str, Any]:
        return self.status.model_dump(by_alias=True, exclude_none=True, mode="json")

    def set(self, type_: str, status: conditions.ConditionStatus, reason: str, message: str = "") -> None:
        conditions.set_condition(self.conds, type_, status, reason=reason, message=message,
                                 observed_generation=self.gen)

    def not_ready_from(self, first: str, reason: str, message: str) -> None:
        """Mark `first` and every later step False with the same explanation."""
        for type_ in CONDITIONS[CONDITIONS.index(first):]:
            self.set(type_, "False", reason, message)

    async def event(self, type_: str, reason: str, message: str) -> None:
        await self.ctx.recorder.record(self.obj, type_, reason, message)

    async def run(self) -> float | None:
        ctx, settings = self.ctx, self.ctx.settings.reconciling
        # ---- Config
        try:
            refs = startrequests.references(self.wl.spec)
            req = startrequests.build(self.wl, sources_for(ctx, self.wl.metadata.namespace or "", refs))
        except startrequests.MissingReference as exc:
            self.not_ready_from("Config", "MissingReference", str(exc))
            await self.event("Warning", "MissingReference", str(exc))
            return settings.unschedulable_retry_s
        fingerprint = startrequests.fingerprint(req)
        self.set("Config", "True", "Resolved", "configuration and references resolved")

        # ---- HostSelection
        host_id = self.status.host_id
        if host_id:
            live = ctx.registry.liveness(host_id)
            if live is Liveness.UNKNOWN:
                return max(0.5, ctx.registry.grace_remaining() + 0.1)  # cannot judge yet: change nothing
            if live is Liveness.DEAD:
                ctx.metrics.failovers.inc()
                self.ctl.evicted.setdefault(host_id, set()).add(self.uid)
                self.ctl.confirmed.pop(self.uid, None)
                message = f"host {host_id} stopped reporting; placing the workload elsewhere"
                self.not_ready_from("HostSelection", "HostNotReady", message)
                self.status.host_id = None
                host_id = None
                written = await statuses.write(ctx.kube, rest_paths.WORKLOADS, self.obj, self.status_dict())
                if written is not None:
                    self.obj = self.ctl.wrote(written)
                await self.event("Normal", "Rescheduling", message)
            elif (unfit := self._no_longer_fits(host_id)) is not None:
                # The spec (hostSelector, environment, interfaces, pin) or the host's labels changed.
                message = f"host {unfit.host} no longer suitable ({unfit.filter}: {unfit.reason}); moving"
                with contextlib.suppress(requests.BusError):
                    await self.ctl.stop(host_id, self.uid)
                self.ctl.confirmed.pop(self.uid, None)
                self.not_ready_from("HostSelection", "HostNoLongerSuitable", message)
                self.status.host_id = None
                host_id = None
                await self.event("Normal", "Rescheduling", message)
        if not host_id:
            if ctx.registry.grace_remaining() > 0:
                # Just (re)connected: hosts have not all reported yet, so a decision now would be
                # made on a partial fleet (everything on the first host heard, or "no host").
                return ctx.registry.grace_remaining() + 0.05
            decision = placement.choose(
                scheduling.requirements(self.key, self.wl.spec, self.group),
                scheduling.host_candidates(ctx.registry, ctx.assignments),
                self._group_counts_by_name(),
            )
            if decision.host is None:
                ctx.metrics.placements.labels("unschedulable").inc()
                message = decision.explain()
                self.not_ready_from("HostSelection", "NoSuitableHost", message)
                await self.event("Warning", "FailedScheduling", message)
                return settings.unschedulable_retry_s
            host_id = decision.host.host_id
            self.status.host_id = host_id
            self.status.environment = decision.host.environment or None
            ctx.assignments.set(self.uid, host_id, self.group, self.key)
            self.set("HostSelection", "True", "HostSelected", f"host {decision.host.name} ({host_id})")
        elif conditions.get_condition(self.conds, "HostSelection").status != "True":  # type: ignore[union-attr]
            self.set("HostSelection", "True", "HostSelected", f"host {host_id}")

        # ---- Placement and Sync
        return await self._place_and_sync(host_id, req, fingerprint)

    def _no_longer_fits(self, host_id: str) -> placement.Exclusion | None:
        host = next((h for h in scheduling.host_candidates(self.ctx.registry, self.ctx.assignments)
                     if h.host_id == host_id), None)
        if host is None:
            return None
        return placement.still_fits(scheduling.requirements(self.key, self.wl.spec, self.group), host)

    def _group_counts_by_name(self) -> dict[str, int]:
        counts = self.ctx.assignments.group_counts(self.group)
        out: dict[str, int] = {}
        for host_id, n in counts.items():
            rec = self.ctx.registry.record(host_id)
            if rec is not None:
                out[rec.name] = n
        return out

    async def _place_and_sync(
        self, host_id: str, req: messages.WorkloadStartRequest, fingerprint: str
    ) -> float | None:
        settings, ctl = self.ctx.settings.reconciling, self.ctl
        now = time.monotonic()
        confirmed = ctl.confirmed.get(self.uid)
        if (
            confirmed
            and (confirmed.host_id, confirmed.fingerprint) == (host_id, fingerprint)
            and now - confirmed.at < settings.sync_interval_s
        ):
            self._mark_running()
            return settings.sync_interval_s - (now - confirmed.at)
        previous_fp = self.wl.metadata.annotations.get(FINGERPRINT_ANNOTATION)
        # Placed here before (by this process, or by an earlier one: the Placement condition and
        # the fingerprint annotation survive restarts): ask the host before starting anything.
        was_here = (confirmed is not None and confirmed.host_id == host_id) or (
            conditions.is_true(self.conds, "Placement") and previous_fp is not None
        )
        need_start = True
        if was_here:
            try:
                state = await ctl.status(host_id, self.uid)
            except requests.BusError as exc:
                log.info("workload %s: status from host %s: %s", self.key, host_id, exc)
                return 1.0  # host judged alive but did not answer: ask again soon, change nothing
            running_here = state.workload_state in (messages.WorkloadState.RUNNING,
                                                    messages.WorkloadState.STARTING)
            same_config = previous_fp == fingerprint or (confirmed and confirmed.fingerprint == fingerprint)
            if running_here and same_config:
                need_start = False
                if state.workload_state is messages.WorkloadState.STARTING:
                    self.set("Sync", "Unknown", "Starting", state.message or "host is starting the workload")
                    self.set("Ready", "False", "Starting", "host is starting the workload")
                    return 1.0
                ctl.confirmed[self.uid] = Confirmed(host_id, fingerprint, now)
                self._mark_running(state)
            elif running_here:
                # The configuration changed (ConfigMap, Secret, artifact): restart with the new one.
                await ctl.stop(host_id, self.uid)
                await self.event("Normal", "Restarting", "configuration changed; restarting on the same host")
        if need_start:
            delay = await self._start(host_id, req, fingerprint)
            if delay is not None:
                return delay
        return settings.sync_interval_s

    async def _start(self, host_id: str, req: messages.WorkloadStartRequest, fingerprint: str) -> float | None:
        ctx, ctl = self.ctx, self.ctl
        req.workload.annotations[FINGERPRINT_ANNOTATION] = fingerprint
        if self.wl.metadata.annotations.get(FINGERPRINT_ANNOTATION) != fingerprint:
            # Recorded before starting: the host never runs a configuration the object does not
            # name (a changed one is stopped before this start), so adoption can trust it.
            meta = self.obj["metadata"]
            self.obj = ctl.wrote(await ctx.kube.patch(
                rest_paths.WORKLOADS, meta.get("namespace"), meta["name"],
                {"metadata": {"annotations": {FINGERPRINT_ANNOTATION: fingerprint}}}))
        if (self.obj.get("status") or {}).get("hostId") != host_id:
            # Record the choice before asking the host (a pull may take a while, and an operator
            # that dies meanwhile must find this host on restart instead of starting a second copy).
            self.set("Placement", "Unknown", "Starting", f"starting on host {host_id}")
            written = await statuses.write(ctx.kube, rest_paths.WORKLOADS, self.obj, self.status_dict())
            if written is not None:
                self.obj = ctl.wrote(written)
        try:
            state = await ctl.start(host_id, req)
        except requests.BusError as exc:
            ctx.metrics.placements.labels("start_failed").inc()
            self.set("Placement", "False", "HostUnreachable", str(exc))
            self.set("Sync", "Unknown", "HostUnreachable", str(exc))
            self.set("Ready", "False", "HostUnreachable", str(exc))
            return self._backoff()
        if state.workload_state is messages.WorkloadState.ERROR:
            ctx.metrics.placements.labels("start_failed").inc()
            message = state.message or "host reported an error"
            self.set("Placement", "False", "StartFailed", message)
            self.set("Sync", "False", "StartFailed", message)
            self.set("Ready", "False", "StartFailed", message)
            await self.event("Warning", "StartFailed", f"host {host_id}: {message}")
            return self._backoff()
        ctx.metrics.placements.labels("placed").inc()
        self.ctl.start_failures.pop(self.uid, None)
        if state.workload_state is messages.WorkloadState.RUNNING:
            self.ctl.confirmed[self.uid] = Confirmed(host_id, fingerprint, time.monotonic())
            self._mark_running(state)
            return None
        self.set("Placement", "True", "Started", f"start accepted by host {host_id}")
        self.set("Sync", "Unknown", "Starting", state.message or f"host reports {state.workload_state.name}")
        self.set("Ready", "False", "Starting", "waiting for the host to report RUNNING")
        return 0.5

    def _mark_running(self, reported: messages.WorkloadStatus | None = None) -> None:
        """`reported`: the host's status of the workload, when just asked (its component list is
        copied; without it, the last one copied stays)."""
        if reported is not None:
            self.status.components = [
                models.ComponentStatus(name=c.name, role=c.role, state=c.state, message=c.message or None)
                for c in reported.components
            ]
        self.set("Placement", "True", "Started", f"running on host {self.status.host_id}")
        self.set("Sync", "True", "Running", "host reports the workload running")
        self.set("Ready", "True", "Ready", "workload is running")

    def _backoff(self) -> float:
        n = self.ctl.start_failures.get(self.uid, 0) + 1
        self.ctl.start_failures[self.uid] = n
        return float(min(30.0, 0.5 * 2 ** (n - 1)))
