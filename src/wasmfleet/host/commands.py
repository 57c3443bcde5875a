"""Answer the operator's requests: decode, dispatch to the workloads, encode - never stay silent.

Every request addressed to runtime.host.<hostID>.> gets a reply:
- a known command with a valid body: the command's response message;
- a workload command whose body does not decode: the command's response with WORKLOAD_STATE_ERROR
  and the reason (so an upstream operator, which reads only the body, records the failure), plus the
  headers Nats-Service-Error-Code: 400 and Nats-Service-Error: <reason>;
- an unknown command, or logs of a workload this host does not run: an ErrorReply body with code
  404 and the same headers;
- an unexpected failure inside the host: ErrorReply with code 500.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass

from wasmfleet.bus import messages, subjects
from wasmfleet.bus.requests import ERROR_CODE_HEADER, error_headers
from wasmfleet.host.hosted_workloads import Workloads
from wasmfleet.host.metrics import HostMetrics
from wasmfleet.host.plugin_api import guestlogs

log = logging.getLogger(__name__)

_OUTCOMES = {"400": "bad_request", "404": "unknown", "500": "error"}


@dataclass(frozen=True)
class Reply:
    body: bytes
    headers: dict[str, str] | None = None


def error_reply(code: int, reason: str) -> Reply:
    body = messages.encode(messages.ErrorReply(error=messages.ErrorDetail(code=code, message=reason)))
    return Reply(body, error_headers(code, reason))


def _workload_id_of(data: bytes) -> str:
    """Best effort: the workloadId of a request that failed to decode as a whole."""
    try:
        obj = json.loads(data)
    except ValueError:
        return ""
    if isinstance(obj, dict):
        value = obj.get("workloadId", obj.get("workload_id"))
        if isinstance(value, str):
            return value
    return ""


class Commands:
    def __init__(
        self, host_id: str, workloads: Workloads, heartbeat: Callable[[], messages.HostHeartbeat],
        metrics: HostMetrics | None = None,
    ) -> None:
        self._host_id = host_id
        self._workloads = workloads
        self._heartbeat = heartbeat
        self._metrics = metrics or HostMetrics()

    async def handle(self, subject: str, data: bytes) -> Reply:
        command = subjects.command_from_host_subject(subject, self._host_id)
        reply = await self._dispatch(subject, command, data)
        code = (reply.headers or {}).get(ERROR_CODE_HEADER, "")
        outcome = _OUTCOMES.get(code, "error") if code else "ok"
        label = command if command in subjects.COMMANDS else "unknown"
        self._metrics.commands.labels(label, outcome).inc()
        return reply

    async def _dispatch(self, subject: str, command: str, data: bytes) -> Reply:
        try:
            if command == subjects.HEARTBEAT:
                return self._on_heartbeat(data)
            if command == subjects.WORKLOAD_START:
                return await self._on_start(data)
            if command == subjects.WORKLOAD_STATUS:
                return self._on_status(data)
            if command == subjects.WORKLOAD_STOP:
                return await self._on_stop(data)
            if command == subjects.WORKLOAD_LOGS:
                return await self._on_logs(data)
        except Exception as exc:  # a bug must still produce an answer, never silence
            log.exception("command %s failed", subject)
            return error_reply(500, f"{command}: internal error: {type(exc).__name__}: {exc}")
        known = ", ".join(subjects.COMMANDS)
        return error_reply(404, f"unknown command {command or subject!r}; this host answers {known}")

    def _on_heartbeat(self, data: bytes) -> Reply:
        try:
            messages.decode(messages.HeartbeatRequest, data)
        except messages.DecodeError as exc:
            return error_reply(400, f"invalid request: {exc}")
        return Reply(messages.encode(self._heartbeat()))

    async def _on_start(self, data: bytes) -> Reply:
        try:
            request = messages.decode(messages.WorkloadStartRequest, data)
        except messages.DecodeError as exc:
            return self._bad(messages.WorkloadStartResponse, data, f"invalid request: {exc}")
        if not request.workload_id:
            return self._bad(messages.WorkloadStartResponse, data, "invalid request: workloadId is required")
        status = await self._workloads.start(request)
        return Reply(messages.encode(messages.WorkloadStartResponse(workload_status=status)))

    def _on_status(self, data: bytes) -> Reply:
        try:
            request = messages.decode(messages.WorkloadStatusRequest, data)
        except messages.DecodeError as exc:
            return self._bad(messages.WorkloadStatusResponse, data, f"invalid request: {exc}")
        if not request.workload_id:
            return self._bad(messages.WorkloadStatusResponse, data, "invalid request: workloadId is required")
        status = self._workloads.status(request.workload_id)
        return Reply(messages.encode(messages.WorkloadStatusResponse(workload_status=status)))

    async def _on_stop(self, data: bytes) -> Reply:
        try:
            request = messages.decode(messages.WorkloadStopRequest, data)
        except messages.DecodeError as exc:
            return self._bad(messages.WorkloadStopResponse, data, f"invalid request: {exc}")
        if not request.workload_id:
            return self._bad(messages.WorkloadStopResponse, data, "invalid request: workloadId is required")
        status = await self._workloads.stop(request.workload_id)
        return Reply(messages.encode(messages.WorkloadStopResponse(workload_status=status)))

    async def _on_logs(self, data: bytes) -> Reply:
        try:
            request = messages.decode(messages.WorkloadLogsRequest, data)
        except messages.DecodeError as exc:
            return error_reply(400, f"invalid request: {exc}")
        workload_id = request.workload_id
        if not workload_id:
            return error_reply(400, "invalid request: workloadId is required")
        if not self._workloads.known(workload_id):
            return error_reply(404, f"workload {workload_id} is not on this host")
        lines: list[guestlogs.Line] = []
        truncated = False
        if self._workloads.log_dir is not None:
            # Reading (up to two files of a few MB) is blocking I/O: off the loop.
            lines, truncated = await asyncio.to_thread(
                guestlogs.tail, self._workloads.log_dir, workload_id, request.tail_lines, request.since_time
            )
        response = messages.WorkloadLogsResponse(
            workload_id=workload_id,
            lines=[
                messages.LogLine(time=line.time, stream=line.stream, component=line.component, text=line.text)
                for line in lines
            ],
            truncated=truncated,
        )
        return Reply(messages.encode(response))

    @staticmethod
    def _bad(
        response_type: type[messages.WorkloadStartResponse]
        | type[messages.WorkloadStatusResponse]
        | type[messages.WorkloadStopResponse],
        data: bytes,
        reason: str,
    ) -> Reply:
        status = messages.WorkloadStatus(
            workload_id=_workload_id_of(data), workload_state=messages.WorkloadState.ERROR, message=reason
        )
        return Reply(messages.encode(response_type(workload_status=status)), error_headers(400, reason))
