"""Requests from the operator to one host (workload.start, status, stop), abandoned once it is dead.

A request that reached a host just before it was killed gets no reply: on its own it would wait its
whole timeout (5 s for workload.status, 60 s for workload.start) and hold the workload's reconcile,
and so its re-placement, that long. Every call here also waits on the host registry's judgement and
raises `HostGone` as soon as the host is judged DEAD, so failover proceeds on the heartbeat expiry
alone.

This is also where the bus's exceptions become the runner's vocabulary: a failure asking again may
fix (no reply, no responders, the host died) is a `CallFailed` (a `running.TemporaryError`); a
request the host refused as wrong (a 4xx error reply, an undecodable reply) is a `CallRefused` (a
`running.PermanentError`). Each keeps the bus error as its cause.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from wasmfleet.bus import messages, requests, subjects
from wasmfleet.kube import running
from wasmfleet.operator import context

T = TypeVar("T")


class CallFailed(running.TemporaryError):
    """A request to a host failed; asking again may succeed."""

    def __init__(self, message: str, *, no_responders: bool = False, delay: float | None = None) -> None:
        super().__init__(message, delay=delay)
        self.no_responders = no_responders  # nobody listens: the host is gone, nothing runs there


class CallRefused(running.PermanentError):
    """The host refused the request itself; asking again with the same request cannot help."""


class HostGone(CallFailed):
    """The host was judged DEAD while (or before) the request was in flight: look again at once
    (the workload is placed elsewhere then)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, no_responders=True, delay=0.0)


FAILURES = (CallFailed, CallRefused)


class HostCalls:
    def __init__(self, ctx: context.Context) -> None:
        self._ctx = ctx

    async def _ask(self, host_id: str, subject: str, request: Awaitable[T]) -> T:
        gone = self._ctx.registry.gone(host_id)
        call = asyncio.ensure_future(request)
        if gone.is_set():
            call.cancel()
            raise HostGone(f"{subject}: host {host_id} is judged dead")
        death = asyncio.ensure_future(gone.wait())
        try:
            await asyncio.wait({call, death}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            death.cancel()
            if not call.done():
                call.cancel()
        if call.cancelled() or not call.done():
            raise HostGone(f"{subject}: host {host_id} was judged dead before it answered")
        try:
            return call.result()
        except requests.BusError as exc:
            if not exc.retryable:
                raise CallRefused(str(exc)) from exc
            raise CallFailed(str(exc), no_responders=isinstance(exc, requests.NoResponders)) from exc

    async def start(self, host_id: str, req: messages.WorkloadStartRequest) -> messages.WorkloadStatus:
        subject = subjects.workload_start(host_id)
        reply = await self._ask(host_id, subject, requests.request(
            self._ctx.nats, subject, req, messages.WorkloadStartResponse,
            timeout_s=self._ctx.settings.reconciling.start_timeout_s,
        ))
        return reply.workload_status

    async def status(self, host_id: str, uid: str) -> messages.WorkloadStatus:
        subject = subjects.workload_status(host_id)
        reply = await self._ask(host_id, subject, requests.request(
            self._ctx.nats, subject, messages.WorkloadStatusRequest(workload_id=uid),
            messages.WorkloadStatusResponse, timeout_s=self._ctx.settings.reconciling.status_timeout_s,
        ))
        return reply.workload_status

    async def stop(self, host_id: str, uid: str) -> None:
        subject = subjects.workload_stop(host_id)
        await self._ask(host_id, subject, requests.request(
            self._ctx.nats, subject, messages.WorkloadStopRequest(workload_id=uid),
            messages.WorkloadStopResponse, timeout_s=self._ctx.settings.reconciling.stop_timeout_s,
        ))
