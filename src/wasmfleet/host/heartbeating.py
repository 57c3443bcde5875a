"""Heartbeats: what the host tells the operator about itself, every interval and on request.

The loop runs in its own task and never waits on workload commands, so a slow component fetch cannot
delay it (upstream's serial command loop can). While NATS is disconnected nothing is queued (stale
beats are worthless); the agent wakes the loop on reconnect so the operator hears from the host at
once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from wasmfleet import __version__
from wasmfleet.bus import messages, subjects
from wasmfleet.host.machine import Machine
from wasmfleet.host.runtime import capabilities
from wasmfleet.host.settings import Identity

log = logging.getLogger(__name__)

# Interfaces the host calls on components (the component exports them); the rest the host provides.
_EXPORTED = {("wasi", "http", "incoming-handler"), ("wasmcloud", "messaging", "handler")}


def provided_interfaces() -> list[messages.WitInterface]:
    """What the runtime can link (its capabilities), as protocol WitInterfaces."""
    return [
        messages.WitInterface(
            namespace=grant.namespace,
            package=grant.package,
            version=grant.version or "",
            interfaces=list(grant.interfaces),
        )
        for grant in capabilities.provided_interfaces()
    ]


def split_interfaces(
    provided: list[messages.WitInterface],
) -> tuple[list[messages.WitInterface], list[messages.WitInterface]]:
    """(imports, exports) as upstream's heartbeat lists them: what components may import from the
    host, and what the host can invoke on components."""
    imports: list[messages.WitInterface] = []
    exports: list[messages.WitInterface] = []
    for wit in provided:
        exported = [i for i in wit.interfaces if (wit.namespace, wit.package, i) in _EXPORTED]
        imported = [i for i in wit.interfaces if i not in exported]
        if imported or not wit.interfaces:
            imports.append(wit.model_copy(update={"interfaces": imported}))
        if exported:
            exports.append(wit.model_copy(update={"interfaces": exported}))
    return imports, exports


@dataclass
class HeartbeatSource:
    identity: Identity
    hostname: str
    started_at: datetime
    machine: Machine
    counts: Callable[[], tuple[int, int]]
    http_port: Callable[[], int]
    imports: list[messages.WitInterface]
    exports: list[messages.WitInterface]

    def build(self) -> messages.HostHeartbeat:
        facts = self.machine.facts()
        workloads, components = self.counts()
        return messages.HostHeartbeat(
            id=self.identity.host_id,
            hostname=self.hostname,
            friendly_name=self.identity.friendly_name,
            version=__version__,
            labels=dict(self.identity.labels),
            started_at=self.started_at,
            os_arch=facts.os_arch,
            os_name=facts.os_name,
            os_kernel=facts.os_kernel,
            system_cpu_usage=facts.cpu_usage_percent,
            system_memory_total=facts.memory_total,
            system_memory_free=facts.memory_free,
            component_count=components,
            workload_count=workloads,
            imports=list(self.imports),
            exports=list(self.exports),
            http_port=self.http_port(),
            environment=self.identity.environment,
        )


async def publish(nc: Any, subject: str, heartbeat: messages.HostHeartbeat) -> bool:
    if not nc.is_connected:
        return False
    try:
        await nc.publish(subject, messages.encode(heartbeat))
        return True
    except Exception as exc:  # a publish racing a disconnect: the next beat will do
        log.debug("heartbeat not published: %s", exc)
        return False


async def heartbeat_loop(
    nc: Any, source: HeartbeatSource, interval_s: float, wake: asyncio.Event,
    published: Callable[[], None] = lambda: None,
) -> None:
    """Publish a heartbeat now, then every `interval_s`, and whenever `wake` is set."""
    subject = subjects.operator_heartbeat(source.identity.host_id)
    while True:
        if await publish(nc, subject, source.build()):
            published()
        # asyncio.timeout, not wait_for: on 3.11 wait_for returns normally when a cancel arrives just
        # as `wake` is set, and this loop would then never end.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(interval_s):
                await wake.wait()
        wake.clear()
