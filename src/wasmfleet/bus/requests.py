"""Typed request/reply over NATS, with nats-py's exceptions mapped to ours at this one boundary.

    reply = await requests.request(nc, subjects.workload_start(host_id), start_req,
                                   messages.WorkloadStartResponse, timeout_s=60)

A reply carrying the `Nats-Service-Error-Code` header with an ErrorReply body (how a wasmfleet host
answers a request it cannot serve: unknown command, internal failure) raises `RemoteError`; with the
command's own response type as body (an undecodable workload command) that response is returned.
No host listening raises `NoResponders`; silence raises `RequestTimeout`. All are `BusError`, and
each says whether retrying may help.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

import nats.errors

from wasmfleet.bus import messages

ERROR_HEADER = "Nats-Service-Error"
ERROR_CODE_HEADER = "Nats-Service-Error-Code"

R = TypeVar("R", bound=messages.Message)


class BusError(RuntimeError):
    """A request over NATS failed. `retryable` says whether asking again may succeed."""

    retryable = True

    def __init__(self, subject: str, reason: str) -> None:
        super().__init__(f"{subject}: {reason}")
        self.subject = subject
        self.reason = reason


class NoResponders(BusError):
    """Nobody subscribes to the subject (host gone, or not yet connected)."""


class RequestTimeout(BusError):
    """No reply within the timeout."""


class RemoteError(BusError):
    """The responder answered with an error (bad request, unknown command)."""

    def __init__(self, subject: str, code: int, reason: str) -> None:
        super().__init__(subject, f"error {code}: {reason}")
        self.code = code
        # 4xx: the request itself is wrong, asking again will not help.
        self.retryable = not 400 <= code < 500


class BadReply(BusError):
    """The reply could not be decoded as the expected message."""

    retryable = False


async def request(
    nc: Any,
    subject: str,
    msg: messages.Message,
    response_type: type[R],
    *,
    timeout_s: float,
) -> R:
    """Send `msg` to `subject` and decode the reply as `response_type`."""
    try:
        reply = await nc.request(subject, messages.encode(msg), timeout=timeout_s)
    except nats.errors.NoRespondersError as exc:
        raise NoResponders(subject, "no responders") from exc
    except nats.errors.TimeoutError as exc:
        raise RequestTimeout(subject, f"no reply within {timeout_s:g}s") from exc
    except nats.errors.Error as exc:
        raise BusError(subject, f"{type(exc).__name__}: {exc}") from exc
    headers = reply.headers or {}
    if ERROR_CODE_HEADER in headers and response_type is not messages.ErrorReply:
        code = _int_or(headers.get(ERROR_CODE_HEADER), 500)
        # A workload command answered with its own response type (WORKLOAD_STATE_ERROR and the
        # reason) is returned as such: the caller records the failure like any other. An ErrorReply
        # body (unknown command, host failure) raises.
        if not _is_error_reply(reply.data):
            try:
                return messages.decode(response_type, reply.data)
            except messages.DecodeError:
                pass
        raise RemoteError(subject, code, headers.get(ERROR_HEADER, "") or _error_message(reply.data))
    try:
        return messages.decode(response_type, reply.data)
    except messages.DecodeError as exc:
        raise BadReply(subject, str(exc)) from exc


def _is_error_reply(data: bytes) -> bool:
    try:
        obj = json.loads(data)
    except ValueError:
        return False
    return isinstance(obj, dict) and isinstance(obj.get("error"), dict)


def _error_message(data: bytes) -> str:
    try:
        return messages.decode(messages.ErrorReply, data).error.message
    except messages.DecodeError:
        return "error reply"


def _int_or(value: str | None, default: int) -> int:
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default


def error_headers(code: int, reason: str) -> dict[str, str]:
    """Headers that mark a reply as an error (the NATS micro-services convention)."""
    return {ERROR_CODE_HEADER: str(code), ERROR_HEADER: reason}
