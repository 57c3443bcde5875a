"""The Host controller: Host objects mirror heartbeats (like Nodes mirror kubelets).

Name = the host's friendly name; labels = the host's labels (incl. hostgroup); top-level hostId,
hostname, httpPort, environment; status from the last heartbeat; conditions Reporting and Ready from
the registry's liveness judgement. UNKNOWN judgements (the operator's own bus is down, or it just
started) leave the conditions as they are. Hosts not Ready for `settings.HostHealth.forget_after_s` are deleted.
"""

from __future__ import annotations

import time
from calendar import timegm
from typing import Any

from wasmfleet.api import conditions, groups
from wasmfleet.kube import errors, rest_paths
from wasmfleet.operator import context, hostregistry, statuses

CONDITIONS = ("Reporting", "Ready")


def _age_s(stamp: str | None) -> float:
    if not stamp:
        return 0.0
    try:
        return time.time() - timegm(time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return 0.0


class HostController:
    def __init__(self, ctx: context.Context) -> None:
        self._ctx = ctx
        self._forget_after_s = ctx.settings.hosts.forget_after_s
        self._last_status_write: dict[str, float] = {}

    async def reconcile(self, key: str) -> float | None:
        ctx = self._ctx
        ns, name = rest_paths.split_key(key)
        ns = ns or ctx.settings.hosts.namespace
        rec = ctx.registry.record_by_name(name)
        obj = ctx.informers.hosts.get(key)
        if rec is None and obj is None:
            return None
        host_id = rec.heartbeat.id if rec else str(obj.get("hostId") or "") if obj else ""
        live = ctx.registry.liveness(host_id)
        if obj is None:
            assert rec is not None
            if live is not hostregistry.Liveness.ALIVE:
                return None  # never create a Host for a host we do not currently hear from
            try:
                obj = await ctx.kube.create(rest_paths.HOSTS, ns, self._desired(rec, ns, None))
            except errors.Conflict:
                obj = await ctx.kube.get(rest_paths.HOSTS, ns, name)
        elif rec is not None:
            patch = self._main_patch(rec, obj)
            if patch:
                obj = await ctx.kube.patch(rest_paths.HOSTS, ns, name, patch)

        status: dict[str, Any] = dict(obj.get("status") or {})
        conds = [conditions.Condition.model_validate(c) for c in status.get("conditions") or []]
        statuses.ensure_order(conds, CONDITIONS, None)
        if rec is not None:
            hb = rec.heartbeat
            status.update(
                {
                    "version": hb.version,
                    "osName": hb.os_name,
                    "osArch": hb.os_arch,
                    "osKernel": hb.os_kernel,
                    "systemCPUUsage": f"{hb.system_cpu_usage:g}",
                    "systemMemoryTotal": hb.system_memory_total,
                    "systemMemoryFree": hb.system_memory_free,
                    "componentCount": hb.component_count,
                    "workloadCount": hb.workload_count,
                }
            )
        if live is hostregistry.Liveness.ALIVE:
            conditions.set_condition(conds, "Reporting", "True", reason="HeartbeatReceived",
                                     message="host reports heartbeats")
            conditions.set_condition(conds, "Ready", "True", reason="HostReady", message="host is ready")
        elif live is hostregistry.Liveness.DEAD:
            expiry = ctx.registry.expiry_for(rec) if rec is not None else ctx.settings.hosts.expiry_s
            reason, message = "HeartbeatExpired", f"no heartbeat for more than {expiry:.3g}s"
            if rec is not None and rec.leaving:
                reason, message = "HostLeaving", "host announced it is shutting down"
            elif rec is not None and rec.superseded:
                reason, message = "HostReplaced", "a newer host with the same name took over"
            conditions.set_condition(conds, "Reporting", "False", reason=reason, message=message)
            conditions.set_condition(conds, "Ready", "False", reason=reason, message=message)
            ready = conditions.get_condition(conds, "Ready")
            if ready and _age_s(ready.last_transition_time) > self._forget_after_s:
                await ctx.kube.delete(rest_paths.HOSTS, ns, name)
                ctx.registry.forget(host_id)
                return None
        else:
            return max(0.2, ctx.registry.grace_remaining() + 0.1)
        status["conditions"] = [c.model_dump(by_alias=True, exclude_none=True) for c in conds]

        # lastSeen is throttled: written when something else changed or the interval has passed.
        now = time.monotonic()
        interval = ctx.settings.hosts.status_interval_s
        old = obj.get("status") or {}
        if rec is not None and (
            statuses.merge_patch({**old, "lastSeen": None}, {**status, "lastSeen": None})
            or now - self._last_status_write.get(key, 0.0) >= interval
        ):
            status["lastSeen"] = rec.last_seen_wall
        if await statuses.write(ctx.kube, rest_paths.HOSTS, obj, status) is not None:
            self._last_status_write[key] = now
        if live is hostregistry.Liveness.ALIVE:
            return min(interval, ctx.registry.expires_in(host_id) + 0.05)
        return self._forget_after_s / 4

    def _desired(self, rec: hostregistry.HostRecord, ns: str, _old: Any) -> dict[str, Any]:
        hb = rec.heartbeat
        return {
            "apiVersion": groups.API_VERSION,
            "kind": "Host",
            "metadata": {"name": rec.name, "namespace": ns, "labels": dict(hb.labels)},
            "hostId": hb.id,
            "hostname": hb.hostname,
            "httpPort": hb.http_port,
            "environment": hb.environment,
        }

    def _main_patch(self, rec: hostregistry.HostRecord, obj: dict[str, Any]) -> dict[str, Any]:
        hb = rec.heartbeat
        patch: dict[str, Any] = {}
        for field, value in (("hostId", hb.id), ("hostname", hb.hostname), ("httpPort", hb.http_port),
                             ("environment", hb.environment)):
            if obj.get(field) != value:
                patch[field] = value
        labels = obj["metadata"].get("labels") or {}
        if labels != hb.labels:
            patch["metadata"] = {"labels": statuses.merge_patch(labels, dict(hb.labels))}
        return patch
