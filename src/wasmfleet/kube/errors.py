"""The client layer's errors: kubernetes_asyncio and aiohttp exceptions are mapped here, once.

Each error says whether retrying can help (`temporary`), so the controller runner can requeue with
backoff or give up and record the failure.
"""

from __future__ import annotations

import json


class KubeError(Exception):
    """An API request failed. `status` is the HTTP status (0 when the server was unreachable)."""

    temporary = True

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}" if status else message)
        self.status = status
        self.reason = reason
        self.message = message


class NotFound(KubeError):
    temporary = False


class Conflict(KubeError):
    """409: a stale resourceVersion on update, or a create of an existing name."""


class Gone(KubeError):
    """410: a watch's resourceVersion is too old; the informer must relist."""


class Invalid(KubeError):
    """422 or 400: the object was refused; retrying the same write cannot help."""

    temporary = False


class Unreachable(KubeError):
    """The API server could not be reached (connection refused, timeout)."""


def from_status(status: int, body: str | bytes | None) -> KubeError:
    """Build the right error from an HTTP status and a (possibly Status-object) body."""
    text = body.decode(errors="replace") if isinstance(body, bytes) else (body or "")
    reason, message = "", text.strip()[:500]
    try:
        parsed = json.loads(text)
        if isinstance(parsed, dict):
            reason = str(parsed.get("reason", ""))
            message = str(parsed.get("message", message))
    except ValueError:
        pass
    cls: type[KubeError] = {404: NotFound, 409: Conflict, 410: Gone, 422: Invalid, 400: Invalid}.get(
        status, KubeError
    )
    return cls(status, reason, message)
