"""Knowing that the NATS server has a subscription before relying on it."""

from __future__ import annotations

from typing import Any


async def in_effect(nc: Any, timeout: float = 10.0) -> None:
    """Returns once the server has every subscription made so far on `nc` (a nats-py client).

    One flush() does not promise it: nats-py (2.16) writes flush's PING straight to the socket,
    ahead of a SUB still queued for its flusher task, so the PONG may come back before the server
    has the SUB. A host's first request then met "no responders" (seen in the server's trace:
    the request's PUB, then the SUB). The flusher has run by the time that first PONG is in, so a
    second round trip does promise it."""
    await nc.flush(timeout=timeout)
    await nc.flush(timeout=timeout)
