"""Leader election with a coordination.k8s.io/v1 Lease, as client-go's leaderelection does.

A candidate holds the lease by renewing `spec.renewTime` every `retry_period_s`. Another candidate
takes over only when it has seen the lease record unchanged for `lease_duration_s` of its OWN
monotonic clock (no comparison of wall clocks across machines). Every write carries the
resourceVersion it read, so two candidates racing for an expired lease cannot both win. A leader
that cannot renew for `renew_deadline_s` steps down (`lost` is set); the caller must stop acting.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from wasmfleet.kube import client, errors, rest_paths

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LeaseSettings:
    """lease_duration_s: how long a silent leader is trusted; also the worst-case takeover delay.
    renew_deadline_s: a leader unable to renew for this long steps down (< lease duration, so it
    stops before anybody else may start). retry_period_s: how often to renew or try to acquire."""

    namespace: str = "default"
    name: str = "wasmfleet-operator"
    lease_duration_s: float = 15.0
    renew_deadline_s: float = 10.0
    retry_period_s: float = 2.0


def _micro_time() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    def __init__(self, kube: client.KubeClient, identity: str, settings: LeaseSettings) -> None:
        self.identity = identity
        self.settings = settings
        self._kube = kube
        self.leading = asyncio.Event()
        self.lost = asyncio.Event()
        self._observed: tuple[str, str] | None = None  # (holder, renewTime) last seen
        self._observed_at = 0.0  # monotonic time it was first seen
        self._last_renew = 0.0

    async def run(self) -> None:
        """Acquire, then renew until the lease is lost or the task is cancelled."""
        s = self.settings
        while True:
            try:
                held = await self._try_acquire_or_renew()
            except errors.KubeError as exc:
                log.info("lease %s/%s: %s", s.namespace, s.name, exc)
                held = False
            now = time.monotonic()
            if held:
                self._last_renew = now
                if not self.leading.is_set():
                    log.info("lease %s/%s acquired by %s", s.namespace, s.name, self.identity)
                    self.leading.set()
            elif self.leading.is_set() and now - self._last_renew > s.renew_deadline_s:
                log.warning("lease %s/%s lost by %s", s.namespace, s.name, self.identity)
                self.leading.clear()
                self.lost.set()
                return
            await asyncio.sleep(s.retry_period_s)

    def _spec(self, acquire_time: str | None, transitions: int) -> dict[str, object]:
        now = _micro_time()
        return {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": max(1, round(self.settings.lease_duration_s)),
            "acquireTime": acquire_time or now,
            "renewTime": now,
            "leaseTransitions": transitions,
        }

    async def _try_acquire_or_renew(self) -> bool:
        s = self.settings
        try:
            lease = await self._kube.get(rest_paths.LEASES, s.namespace, s.name)
        except errors.NotFound:
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": s.name, "namespace": s.namespace},
                "spec": self._spec(None, 0),
            }
            try:
                await self._kube.create(rest_paths.LEASES, s.namespace, body)
            except errors.Conflict:
                return False
            return True
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or ""
        record = (holder, str(spec.get("renewTime") or ""))
        now = time.monotonic()
        if record != self._observed:
            self._observed, self._observed_at = record, now
        duration = float(spec.get("leaseDurationSeconds") or s.lease_duration_s)
        if holder and holder != self.identity and now - self._observed_at < duration:
            return False  # somebody else holds a live lease
        transitions = int(spec.get("leaseTransitions") or 0)
        if holder == self.identity:
            new_spec = self._spec(spec.get("acquireTime"), transitions)
        else:
            new_spec = self._spec(None, transitions + 1)
        lease["spec"] = new_spec
        try:
            await self._kube.replace(rest_paths.LEASES, lease)  # carries the resourceVersion we read
        except errors.Conflict:
            return False
        self._observed, self._observed_at = (self.identity, new_spec["renewTime"]), now  # type: ignore[assignment]
        return True

    async def release(self) -> None:
        """Give the lease up at shutdown so a standby takes over at once instead of after expiry."""
        if not self.leading.is_set():
            return
        s = self.settings
        try:
            lease = await self._kube.get(rest_paths.LEASES, s.namespace, s.name)
            if (lease.get("spec") or {}).get("holderIdentity") == self.identity:
                lease["spec"]["holderIdentity"] = ""
                lease["spec"]["leaseDurationSeconds"] = 1
                await self._kube.replace(rest_paths.LEASES, lease)
        except errors.KubeError as exc:
            log.info("lease %s/%s not released: %s", s.namespace, s.name, exc)
        self.leading.clear()
