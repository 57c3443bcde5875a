"""Host liveness from heartbeats: the operator's in-memory view of which hosts are alive.

Judgement has three outcomes. ALIVE: heard from within `expiry_s`. DEAD: silent for longer, announced
that it is leaving, or replaced by a newer host of the same name. UNKNOWN: the operator cannot tell,
because its own NATS connection is down or it (re)connected less than `expiry_s` ago and the host has
not reported since. UNKNOWN never changes anything: losing the operator's own bus is not evidence
that hosts died (upstream deletes every Host and Workload in that case).
"""

from __future__ import annotations

import asyncio
import enum
import logging
import re
import statistics
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from wasmfleet.bus import messages, subjects
from wasmfleet.operator import metrics as metrics_mod
from wasmfleet.operator import settings as settings_mod

log = logging.getLogger(__name__)


class Liveness(enum.Enum):
    ALIVE = "alive"
    DEAD = "dead"
    UNKNOWN = "unknown"


@dataclass
class HostRecord:
    heartbeat: messages.HostHeartbeat
    name: str  # the Host object's name
    last_seen: float  # monotonic
    last_seen_wall: str
    leaving: bool = False
    superseded: bool = False
    # Recent gaps between heartbeats: the host's own cadence (1 s in a local fleet, 15 s upstream).
    gaps: deque[float] = field(default_factory=lambda: deque(maxlen=5))
    # What the host can link, as the scheduler sees it; built on first use (scheduling), dropped
    # when a heartbeat advertises different imports or exports.
    interfaces: frozenset[Any] | None = None


_INVALID = re.compile(r"[^a-z0-9-.]+")


def object_name(hb: messages.HostHeartbeat) -> str:
    """The Host object name: the friendly name (adjective-noun-NNNN), as an RFC 1123 name."""
    raw = (hb.friendly_name or hb.id).lower()
    name = _INVALID.sub("-", raw).strip("-.")[:253]
    return name or "host"


class HostRegistry:
    def __init__(
        self,
        settings: settings_mod.HostHealth,
        metrics: metrics_mod.Metrics,
        on_change: Callable[[str, bool], None],
    ) -> None:
        self._settings = settings
        self._metrics = metrics
        # Called with a host ID whose record changed, and whether its judgement changed too (only
        # then can workloads need to move or find new room).
        self._on_change = on_change
        self._records: dict[str, HostRecord] = {}
        self._by_name: dict[str, str] = {}
        self._connected = False
        self._grace_until = 0.0
        self._judged: dict[str, Liveness] = {}
        self._alive_at_disconnect: set[str] = set()
        # host ID -> set once the host is judged DEAD (requests to it are abandoned then).
        self._gone: dict[str, asyncio.Event] = {}

    # ---- connection state (wired to the NATS client's callbacks)

    def set_connected(self, connected: bool) -> None:
        if not connected and self._connected:
            self._alive_at_disconnect = self.alive_ids()
        if connected and not self._connected:
            # Hosts had no way to reach us while we were away: give each one that was alive a
            # full expiry to report again before judging it.
            now = time.monotonic()
            self._grace_until = now + self._settings.expiry_s
            for host_id in self._alive_at_disconnect:
                rec = self._records.get(host_id)
                if rec is not None:
                    rec.last_seen = max(rec.last_seen, now)
        self._connected = connected

    @property
    def connected(self) -> bool:
        return self._connected

    def grace_remaining(self) -> float:
        return max(0.0, self._grace_until - time.monotonic())

    # ---- observations

    def observe(self, hb: messages.HostHeartbeat, *, leaving: bool = False) -> None:
        if not hb.id:
            return
        self._metrics.heartbeats.inc()
        name = object_name(hb)
        previous_id = self._by_name.get(name)
        if previous_id and previous_id != hb.id and previous_id in self._records:
            # Same friendly name, new host ID: the old process is gone (restart).
            self._records[previous_id].superseded = True
            self._tick_one(previous_id)
        self._by_name[name] = hb.id
        rec = self._records.get(hb.id)
        is_new = rec is None
        now = time.monotonic()
        wall = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        if rec is None:
            rec = HostRecord(hb, name, now, wall)
            self._records[hb.id] = rec
        else:
            changed = (rec.heartbeat.workload_count, rec.heartbeat.labels) != (hb.workload_count, hb.labels)
            if now - rec.last_seen > 0.05:
                rec.gaps.append(now - rec.last_seen)
            if (rec.heartbeat.imports, rec.heartbeat.exports) != (hb.imports, hb.exports):
                rec.interfaces = None
            rec.heartbeat, rec.last_seen, rec.last_seen_wall = hb, now, wall
            is_new = is_new or changed
        rec.leaving = leaving
        rec.superseded = False
        if is_new or leaving or self._judge(hb.id) != self._judged.get(hb.id):
            self._tick_one(hb.id, force=True)

    def _judge(self, host_id: str) -> Liveness:
        if not self._connected:
            return Liveness.UNKNOWN
        rec = self._records.get(host_id)
        now = time.monotonic()
        if rec is not None:
            if rec.leaving or rec.superseded:
                return Liveness.DEAD
            if now - rec.last_seen < self.expiry_for(rec):
                return Liveness.ALIVE
            return Liveness.DEAD
        return Liveness.UNKNOWN if now < self._grace_until else Liveness.DEAD

    def liveness(self, host_id: str) -> Liveness:
        return self._judge(host_id)

    def expiry_for(self, rec: HostRecord) -> float:
        """How long this host may stay silent: the configured expiry, stretched to `missed_beats`
        of the host's own heartbeat cadence (so a 15 s upstream-style host is not declared dead
        between two beats). Until a cadence is known (one heartbeat so far) the configured expiry
        applies: a host may die right after announcing itself, and must still fail over quickly."""
        s = self._settings
        if not rec.gaps:
            return s.expiry_s
        return max(s.expiry_s, s.missed_beats * statistics.median(rec.gaps))

    def expires_in(self, host_id: str) -> float:
        rec = self._records.get(host_id)
        if rec is None:
            return self.grace_remaining()
        return max(0.0, rec.last_seen + self.expiry_for(rec) - time.monotonic())

    def record(self, host_id: str) -> HostRecord | None:
        return self._records.get(host_id)

    def record_by_name(self, name: str) -> HostRecord | None:
        host_id = self._by_name.get(name)
        return self._records.get(host_id) if host_id else None

    def records(self) -> list[HostRecord]:
        return list(self._records.values())

    def alive_ids(self) -> set[str]:
        return {h for h in self._records if self._judge(h) is Liveness.ALIVE}

    def forget(self, host_id: str) -> None:
        rec = self._records.pop(host_id, None)
        if rec is not None and self._by_name.get(rec.name) == host_id:
            self._by_name.pop(rec.name, None)
        self._judged.pop(host_id, None)
        self._gone.pop(host_id, None)

    def gone(self, host_id: str) -> asyncio.Event:
        """An event set while the host is judged DEAD: a request in flight to it waits on this too,
        so a host killed just after a request reached it does not hold its caller for the request's
        whole timeout (the workload must move as soon as the host is judged dead)."""
        event = self._gone.get(host_id)
        if event is None:
            event = self._gone[host_id] = asyncio.Event()
            if self._judge(host_id) is Liveness.DEAD:
                event.set()
        return event

    # ---- loops

    def _tick_one(self, host_id: str, *, force: bool = False) -> None:
        judged = self._judge(host_id)
        previous = self._judged.get(host_id)
        if force or judged != previous:
            if previous is not None and previous is not judged:
                rec = self._records.get(host_id)
                silent = time.monotonic() - rec.last_seen if rec else 0.0
                log.info("host %s: %s -> %s (last heartbeat %.1fs ago)", rec.name if rec else host_id,
                         previous.value, judged.value, silent)
            self._judged[host_id] = judged
            gone = self._gone.get(host_id)
            if gone is not None:
                if judged is Liveness.DEAD:
                    gone.set()
                elif judged is Liveness.ALIVE and gone.is_set():
                    self._gone[host_id] = asyncio.Event()  # back: waiters of the old one saw it die
            self._on_change(host_id, judged != previous)

    def _update_gauges(self) -> None:
        counts = {state: 0 for state in Liveness}
        for host_id in self._records:
            counts[self._judge(host_id)] += 1
        for state, n in counts.items():
            self._metrics.hosts.labels(state.value).set(n)

    async def watch_expiry(self, period_s: float = 0.1) -> None:
        """Notice hosts going silent (and grace periods ending) within `period_s`."""
        grace_was_active = False
        while True:
            before = time.monotonic()
            await asyncio.sleep(period_s)
            stalled = time.monotonic() - before - period_s
            if stalled > 1.0:
                # Our own event loop was blocked (not merely slow: lags under a second are normal on
                # a busy machine and must not postpone expiry forever): heartbeats may be sitting
                # unread in the socket. Silence we could not have heard is no evidence against hosts.
                log.info("event loop stalled for %.1fs: host expiry postponed by as much", stalled)
                for rec in self._records.values():
                    rec.last_seen += stalled
                continue
            for host_id in list(self._records):
                self._tick_one(host_id)
            active = self.grace_remaining() > 0
            if grace_was_active and not active:
                self._on_change("", True)  # "" = re-examine everything (hosts never heard from are DEAD now)
            grace_was_active = active
            self._update_gauges()

    async def subscribe(self, nc: Any) -> None:
        """Listen for heartbeats and leave announcements on the operator's NATS connection."""

        async def on_heartbeat(msg: Any) -> None:
            self._handle(msg, leaving=False)

        async def on_leaving(msg: Any) -> None:
            self._handle(msg, leaving=True)

        await nc.subscribe(subjects.operator_heartbeats(), cb=on_heartbeat)
        await nc.subscribe(subjects.operator_leavings(), cb=on_leaving)

    def _handle(self, msg: Any, *, leaving: bool) -> None:
        try:
            hb = messages.decode(messages.HostHeartbeat, msg.data)
        except messages.DecodeError as exc:
            log.warning("ignoring undecodable heartbeat on %s: %s", msg.subject, exc)
            return
        if not hb.id:
            hb.id = subjects.host_id_from_operator_subject(msg.subject) or ""
        self.observe(hb, leaving=leaving)
