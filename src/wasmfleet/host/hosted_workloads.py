"""The workloads a host runs: start (fetch, compile, route), status, stop - each safe to repeat.

State per workloadId follows upstream's WorkloadState: STARTING while components are fetched and
compiled, RUNNING once every component is prepared, its HTTP hostnames are routed and its message
handlers' subscriptions are live at the NATS server, ERROR with a
one-line reason otherwise; STOPPING while a stop runs, after which the workload is forgotten
(status: NOT_FOUND). A repeated start of a starting or running workload returns that same workload
(no second copy); a start after ERROR tries again, since the cause (a registry outage) may be gone.

A workload's service (its long-running wasi:cli/run component) is fetched with the components,
compiled as a command, and started before HTTP is routed to the components (they may talk to it);
from then on a `ServiceSupervisor` (host/service_supervision.py) runs it, restarts it after a
failure and keeps its state, which `WorkloadStatus.service` reports while the workload is RUNNING.
The workload stays RUNNING whatever its service does (its components still serve); the operator
decides Ready from that state. A stop cancels the service before the workload's directories go.

An ERROR says whether trying again can help (`WorkloadStatus.retryable`), decided here from the kind
of failure, never from its text: a fetch failure is as retryable as the artifact layer says (a 503
or unreachable registry is, a 404 or denied image is not); an invalid workload or an unusable
component is permanent; the runtime being unavailable, the host stopping, or an unexpected
internal error are worth another try.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from wasmfleet.artifacts.fetching import ArtifactError, Fetcher
from wasmfleet.bus import messages, replica_groups
from wasmfleet.host import service_supervision, translation
from wasmfleet.host.metrics import HostMetrics
from wasmfleet.host.plugin_api import guestlogs
from wasmfleet.host.plugins import messaging_config
from wasmfleet.host.policy import HostPolicy
from wasmfleet.host.runtime import commands, instances, plugin_registry, specs
from wasmfleet.host.runtime import errors as runtime_errors

log = logging.getLogger(__name__)
State = messages.WorkloadState

SHUTDOWN_SERVICE_GRACE_S = 0.8
"""How long a host that is shutting down waits for its cancelled services: within the 1 s its
shutdown gives the removal of local state, and enough for a guest computing (~100 ms to the next
epoch check) or sleeping in a host call."""


class DataPlane(Protocol):
    """What the agent needs from the runtime's WasmServer."""

    async def prepare_workload(self, component_specs: list[specs.ComponentSpec]) -> instances.PreparedWorkload: ...

    async def route(self, workload_id: str, hostnames: list[str], spec: specs.ComponentSpec) -> None: ...

    async def unroute(self, workload_id: str) -> None: ...

    async def subscribe(self, workload_id: str, spec: specs.ComponentSpec,
                        plan: messaging_config.Subscriptions) -> None: ...

    async def unsubscribe(self, workload_id: str) -> None: ...


@dataclass
class Record:
    workload_id: str
    namespace: str
    name: str
    scratch: Path
    state: State = State.STARTING
    message: str = "starting"
    components: int = 0
    hostnames: list[str] = field(default_factory=list)
    http_handler: bool = False
    """The workload lists wasi:http incoming-handler (so it expects HTTP traffic)."""
    routed: bool = False
    subscribed: bool = False
    handlers: list[str] = field(default_factory=list)
    """Components that handle messages (role: messaging handler), live once RUNNING."""
    subjects: list[str] = field(default_factory=list)
    task: asyncio.Task[None] | None = None
    retryable: bool = False
    """With ERROR: whether the same start may succeed later (see the module docstring)."""
    component_statuses: list[messages.ComponentStatus] = field(default_factory=list)
    """With RUNNING: each component's role and state (WorkloadStatus.components)."""
    service: service_supervision.ServiceSupervisor | None = None
    """The workload's service, once started (WorkloadStatus.service)."""

    def fail(self, message: str, *, retryable: bool) -> None:
        self.state, self.message, self.retryable = State.ERROR, message, retryable

    def status(self) -> messages.WorkloadStatus:
        running = self.state is State.RUNNING
        status = _status(self.workload_id, self.state, self.message,
                         retryable=self.retryable and self.state is State.ERROR,
                         components=list(self.component_statuses) if running else [])
        if running and self.service is not None:
            status.service = self.service.status()
            status.message = "; ".join(p for p in (self.message, f"service {status.service.message}") if p)
        return status


def _status(workload_id: str, state: State, message: str, *, retryable: bool = False,
            components: list[messages.ComponentStatus] | None = None) -> messages.WorkloadStatus:
    return messages.WorkloadStatus(workload_id=workload_id, workload_state=state, message=message,
                                   retryable=retryable, components=components or [])


class Workloads:
    def __init__(
        self, plane: DataPlane, fetcher: Fetcher, *, data_dir: Path, max_concurrent_starts: int,
        metrics: HostMetrics | None = None, log_dir: Path | None = None, policy: HostPolicy | None = None,
        runtime_settings: specs.RuntimeSettings | None = None,
    ) -> None:
        """`log_dir`: where the runtime appends each workload's guest output (the runtime's
        guest_log_dir); a workload's log is removed when it is stopped. `runtime_settings`: those of
        the data plane (cache, engine, plugins), for the services this host runs itself."""
        self.log_dir = log_dir
        self._runtime_settings = runtime_settings or specs.RuntimeSettings(guest_log_dir=log_dir)
        self._policy = policy or HostPolicy()  # nothing from the local filesystem unless allowed
        self._plane = plane
        self._metrics = metrics or HostMetrics()
        self._fetcher = fetcher
        self._data_dir = data_dir
        self._start_slots = asyncio.Semaphore(max_concurrent_starts)
        self._records: dict[str, Record] = {}
        self._stopping: dict[str, asyncio.Task[None]] = {}
        self._refusal: str | None = None

    # ---- queries -----------------------------------------------------------------------------

    def status(self, workload_id: str) -> messages.WorkloadStatus:
        record = self._records.get(workload_id)
        if record is None:
            return _status(workload_id, State.NOT_FOUND, "workload not found on this host")
        return record.status()

    def counts(self) -> tuple[int, int]:
        """(workloads, components) that are running, for heartbeats."""
        running = [r for r in self._records.values() if r.state is State.RUNNING]
        return len(running), sum(r.components for r in running)

    def known(self, workload_id: str) -> bool:
        return workload_id in self._records

    def records(self) -> list[Record]:
        return list(self._records.values())

    def services_by_state(self) -> dict[str, int]:
        """Services of running workloads by their state (a ServiceState value)."""
        counts: dict[str, int] = {}
        for record in self._records.values():
            if record.state is State.RUNNING and record.service is not None:
                counts[record.service.state.value] = counts.get(record.service.state.value, 0) + 1
        return counts

    def by_state(self) -> dict[State, int]:
        counts: dict[State, int] = {}
        for record in self._records.values():
            counts[record.state] = counts.get(record.state, 0) + 1
        return counts

    # ---- start -------------------------------------------------------------------------------

    def refuse_new(self, reason: str) -> None:
        """From now on, starts of new workloads are answered ERROR with `reason` (shutdown)."""
        self._refusal = reason

    async def start(self, request: messages.WorkloadStartRequest) -> messages.WorkloadStatus:
        workload_id = request.workload_id
        record = self._records.get(workload_id)
        if record is not None and record.state in (State.STARTING, State.RUNNING):
            if record.task is not None:
                await asyncio.wait([record.task])  # join the start in progress, never a second copy
            return record.status()
        if record is not None and record.state is State.STOPPING:
            return _status(workload_id, State.ERROR, "workload is being stopped; start it again afterwards",
                           retryable=True)
        if self._refusal is not None:
            return _status(workload_id, State.ERROR, self._refusal, retryable=True)
        failed = record  # a previous attempt in ERROR: replaced now, cleaned up by the new start
        workload = request.workload
        record = Record(
            workload_id=workload_id,
            namespace=workload.namespace,
            name=workload.name,
            scratch=self._data_dir / "workloads" / _safe(workload_id),
            components=len(workload.wit_world.components),
            hostnames=translation.http_hostnames(workload),
            http_handler=any(translation.is_http_handler(e) for e in workload.wit_world.host_interfaces),
        )
        # Registered before any await, so a concurrent duplicate joins this start.
        self._records[workload_id] = record
        record.task = asyncio.create_task(self._start(record, workload, failed), name=f"start {workload_id}")
        await asyncio.wait([record.task])
        return record.status()

    async def _start(self, record: Record, workload: messages.Workload, failed: Record | None) -> None:
        began = time.monotonic()
        try:
            if failed is not None:
                await self._forget(failed)
            async with self._start_slots:
                await self._fetch_prepare_route(record, workload)
            record.state, record.message = State.RUNNING, _running_message(record)
            log.info("workload %s (%s/%s) running: %s", record.workload_id, record.namespace,
                     record.name, record.message)
        except asyncio.CancelledError:
            record.fail("stopped while starting", retryable=True)
            raise
        except ArtifactError as exc:
            record.fail(str(exc), retryable=exc.retryable)
            log.warning("workload %s failed to start: %s", record.workload_id, exc)
        except (translation.InvalidWorkload, runtime_errors.ComponentError) as exc:
            record.fail(str(exc), retryable=False)
            log.warning("workload %s failed to start: %s", record.workload_id, exc)
        except runtime_errors.RuntimeError_ as exc:
            record.fail(f"runtime unavailable: {exc}", retryable=True)
            log.warning("workload %s failed to start: %s", record.workload_id, exc)
        except Exception as exc:
            record.fail(f"internal error: {type(exc).__name__}: {exc}", retryable=True)
            log.exception("workload %s failed to start", record.workload_id)
        if record.state is State.RUNNING:
            self._metrics.starts.labels("running").inc()
            self._metrics.start_seconds.observe(time.monotonic() - began)
        else:
            self._metrics.starts.labels("error").inc()
        if record.state is State.ERROR and record.service is not None:
            await self._stop_service(record)
        if record.state is State.ERROR and record.subscribed:
            with contextlib.suppress(Exception):
                await self._plane.unsubscribe(record.workload_id)
            record.subscribed = False
        if record.state is State.ERROR and record.routed:
            with contextlib.suppress(Exception):
                await self._plane.unroute(record.workload_id)
            record.routed = False

    async def _fetch_prepare_route(self, record: Record, workload: messages.Workload) -> None:
        workload = self._policy.check(workload)  # before anything is fetched or created (host/policy.py)
        components = workload.wit_world.components
        service = workload.service if workload.service is not None and workload.service.image else None
        if workload.service is not None and service is None:
            raise translation.InvalidWorkload("the service has no image")
        if not components and service is None:
            raise translation.InvalidWorkload("workload has no components and no service")
        for index, component in enumerate(components):
            if not component.image:
                raise translation.InvalidWorkload(
                    f"component {translation.component_name(component, index)} has no image"
                )
        # Checked before anything is fetched: a bad entry fails the start, never a guest call.
        problems = plugin_registry.installed().entry_problems(translation.grants(workload))
        if problems:
            raise translation.InvalidWorkload("; ".join(problems))
        plans = _messaging_plans(workload)  # bad messaging keys fail here, before any fetch
        volumes = await asyncio.to_thread(translation.volume_dirs, workload, record.scratch)
        if service is not None:  # a bad volumeMount fails the start before anything is fetched
            translation.preopens(service.local_resources, volumes, translation.SERVICE_NAME)
        record.message = "fetching components" if service is None else "fetching components and the service"
        parts: list[messages.Component | messages.Service] = [*components, *([service] if service else [])]
        fetched = await asyncio.gather(*(
            self._fetcher.fetch(
                part.image,
                credentials=translation.credentials(part.image_pull_secret),
                policy=translation.pull_policy(part.image_pull_policy),
            )
            for part in parts
        ))
        self._metrics.download_bytes.inc(sum(got.size for got in fetched if got.downloaded))
        if service is not None:
            service_got, fetched = fetched[-1], fetched[:-1]
        component_specs = [
            translation.component_spec(record.workload_id, component, index, got.path, workload, volumes,
                                       translation.loopback_dir(record.scratch))
            for index, (component, got) in enumerate(zip(components, fetched, strict=True))
        ]
        record.message = "compiling components"
        prepared = (await self._plane.prepare_workload(component_specs) if component_specs
                    else instances.PreparedWorkload(components=[], http_entry=None))
        if service is not None:
            # Before any route: the components may call the service from their first request.
            record.message = "starting the service"
            service_spec = translation.service_spec(record.workload_id, service, service_got.path, workload, volumes,
                                                    translation.loopback_dir(record.scratch))
            await self._start_service(record, service_spec, service)
        entry = prepared.http_entry
        if record.hostnames:
            if entry is None:
                raise runtime_errors.ComponentError(
                    f"workload {record.namespace}/{record.name}",
                    "has HTTP hostnames, but none of its components exports wasi:http/incoming-handler",
                )
            # The HTTP entry carries the other components: those it imports from are
            # instantiated with it for every request (runtime/instances.py).
            await self._plane.route(record.workload_id, record.hostnames,
                                    instances.with_peers(component_specs, entry))
            record.routed = True
        # Subscriptions last: RUNNING is reported once they are live at the NATS server (not before,
        # as upstream does), and a failure above leaves none behind.
        for spec, plan in zip(component_specs, plans, strict=True):
            if plan is None:
                continue
            record.message = f"subscribing {spec.name}"
            record.subscribed = True
            await self._plane.subscribe(record.workload_id, spec, plan)
            record.handlers.append(spec.name)
            record.subjects += [s for s in plan.subjects if s not in record.subjects]
        record.component_statuses = component_statuses(prepared, http_served=record.routed,
                                                       handlers=set(record.handlers))

    # ---- stop --------------------------------------------------------------------------------

    async def stop(self, workload_id: str) -> messages.WorkloadStatus:
        record = self._records.get(workload_id)
        if record is None:
            return _status(workload_id, State.NOT_FOUND, "workload not found on this host")
        running = self._stopping.get(workload_id)
        if running is None:
            record.state, record.message = State.STOPPING, "stopping"
            running = asyncio.create_task(self._stop(record), name=f"stop {workload_id}")
            self._stopping[workload_id] = running
        await asyncio.wait([running])
        return _status(workload_id, State.STOPPING, "stopped")

    async def _stop(self, record: Record) -> None:
        try:
            if record.task is not None and not record.task.done():
                record.task.cancel()
                await asyncio.wait([record.task])
            await self._forget(record)
            await self._drop_logs(record.workload_id)
            self._metrics.stops.inc()
            log.info("workload %s (%s/%s) stopped", record.workload_id, record.namespace, record.name)
        finally:
            self._stopping.pop(record.workload_id, None)

    async def _forget(self, record: Record) -> None:
        if record.subscribed:  # first: no new message starts while the workload goes away
            try:
                await self._plane.unsubscribe(record.workload_id)
            except Exception:
                log.exception("unsubscribing workload %s failed", record.workload_id)
            record.subscribed = False
        if record.routed:
            try:
                await self._plane.unroute(record.workload_id)
            except Exception:
                log.exception("unrouting workload %s failed", record.workload_id)
            record.routed = False
        if record.service is not None:  # after the routes (no new request reaches it), before its volumes
            await self._stop_service(record)
        await asyncio.to_thread(shutil.rmtree, record.scratch, True)
        if self._records.get(record.workload_id) is record:
            del self._records[record.workload_id]

    # ---- the service ---------------------------------------------------------------------------

    async def _start_service(self, record: Record, spec: specs.ComponentSpec, service: messages.Service) -> None:
        """Compiles and links the service as a command (ComponentError, permanent, naming the image
        when it is not one or imports what is not granted), then starts its first run."""
        try:
            command = await asyncio.to_thread(commands.Command, spec, self._runtime_settings)
        except runtime_errors.ComponentError as exc:
            raise runtime_errors.ComponentError(f"service {service.image}", exc.cause) from None
        guest_log = guestlogs.for_component(self.log_dir, record.workload_id, spec.name)
        record.service = service_supervision.ServiceSupervisor(
            record.workload_id, command, service_supervision.RestartPolicy.for_service(service.max_restarts),
            guest_log=guest_log, on_restart=self._metrics.service_restarts.inc)
        record.service.start()

    async def _stop_service(self, record: Record, grace_s: float = service_supervision.STOP_GRACE_S) -> None:
        supervisor, record.service = record.service, None
        if supervisor is None:
            return
        if await supervisor.stop(grace_s):
            log.info("service of workload %s stopped", record.workload_id)

    async def stop_all(self) -> None:
        await asyncio.gather(*(self.stop(workload_id) for workload_id in list(self._records)))

    async def discard_local_state(self) -> None:
        """After the data plane stopped: cancel unfinished starts and services, remove scratch
        directories. The services are cancelled together, with a short wait (the host is leaving:
        an abandoned thread ends with the process)."""
        await asyncio.gather(*(self._stop_service(record, grace_s=SHUTDOWN_SERVICE_GRACE_S)
                               for record in list(self._records.values()) if record.service is not None))
        for record in list(self._records.values()):
            if record.task is not None and not record.task.done():
                record.task.cancel()
                await asyncio.wait([record.task])
            record.routed = record.subscribed = False  # the server is gone; nothing left to undo
            await self._forget(record)
            await self._drop_logs(record.workload_id)

    async def _drop_logs(self, workload_id: str) -> None:
        # Kept through ERROR and retries (they tell why); gone with the workload, like a pod's logs.
        if self.log_dir is not None:
            await asyncio.to_thread(guestlogs.remove, self.log_dir, workload_id)


def component_statuses(
    prepared: instances.PreparedWorkload, *, http_served: bool, handlers: frozenset[str] | set[str] = frozenset()
) -> list[messages.ComponentStatus]:
    """Each component's role and state, in manifest order, as the host runs them: the HTTP entry is
    running when its hostnames are routed, a message handler once its subscriptions are live
    (`handlers`); a component is linked when a running one reaches it through its imports; anything
    else is idle (compiled and checked, nothing calls it)."""
    Role, Cstate = messages.ComponentRole, messages.ComponentState
    running = {prepared.http_entry} if http_served and prepared.http_entry is not None else set()
    running |= {i for i, c in enumerate(prepared.components) if c.name in handlers}
    reached = {name for i in running for name in prepared.components[i].reaches}
    out = []
    for index, component in enumerate(prepared.components):
        notes = [f"imports {iface} from {provider}" for iface, provider in component.links.items()]
        if index in running:
            state = Cstate.RUNNING
        elif component.name in reached:
            state = Cstate.LINKED
        else:
            state = Cstate.IDLE
            if component.role == Role.HTTP:
                notes.insert(0, "no HTTP route")
            elif any(e.startswith("wasi:http/incoming-handler@") for e in component.exports):
                served_by = prepared.components[prepared.http_entry].name if prepared.http_entry is not None else "?"
                notes.insert(0, f"exports wasi:http/incoming-handler, but {served_by} serves the workload's HTTP "
                                "(the first in manifest order)")
            elif component.role == Role.MESSAGING_HANDLER:
                notes.insert(0, "messages are not delivered to it")
            else:
                notes.insert(0, "no running component imports from it")
        out.append(messages.ComponentStatus(name=component.name, role=component.role, state=state,
                                            message="; ".join(notes)))
    return out


def _messaging_plans(workload: messages.Workload) -> list[messaging_config.Subscriptions | None]:
    """Per component: its subscriptions when the workload grants wasmcloud:messaging/handler (the
    whole package, or the handler interface) and a source sets `subscriptions`; None otherwise.
    InvalidWorkload naming the key when a value is bad, or when the handler is granted explicitly
    but no component has subscriptions."""
    entries = [e for e in workload.wit_world.host_interfaces if (e.namespace, e.package) == ("wasmcloud", "messaging")]
    if not any(not e.interfaces or "handler" in e.interfaces for e in entries):
        return [None] * len(workload.wit_world.components)
    configs = [dict(e.config) for e in entries]
    plans = []
    for index, component in enumerate(workload.wit_world.components):
        try:
            plans.append(messaging_config.resolve(
                dict(component.local_resources.config), configs, namespace=workload.namespace,
                workload=replica_groups.of(workload), component=translation.component_name(component, index)))
        except messaging_config.MessagingConfigError as exc:
            raise translation.InvalidWorkload(str(exc)) from None
    if all(p is None for p in plans) and any("handler" in e.interfaces for e in entries):
        raise translation.InvalidWorkload(
            "hostInterfaces entry wasmcloud:messaging grants handler, but config.subscriptions is set "
            "neither there nor in any component's localResources.config")
    return plans


def _running_message(record: Record) -> str:
    components = record.component_statuses
    listed = ", ".join(f"{c.name} ({c.role}, {c.state})" for c in components)
    parts = [f"{len(components)} component{'' if len(components) == 1 else 's'}: {listed}"] if components else []
    if record.handlers:
        parts.append(f"handling messages on {', '.join(record.subjects)} ({', '.join(record.handlers)})")
    if record.hostnames:
        parts.append("serving " + ", ".join(record.hostnames))
    elif record.http_handler:
        parts.append("no HTTP route: the wasi:http incoming-handler entry has no config.host or host-aliases")
    return "; ".join(parts)


def _safe(workload_id: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in workload_id) or "_"
