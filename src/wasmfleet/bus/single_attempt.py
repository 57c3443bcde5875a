"""Connect to NATS once, without reconnecting, and leave no socket behind when that fails.

nats-py's `nats.connect(allow_reconnect=False)` raises on a refused or failed first attempt but
keeps the half-open transport (TCP, possibly TLS) inside the client it never returns: the socket
is only closed by the garbage collector, with a ResourceWarning. Creating the client ourselves lets
us close it on failure. Used by the start-up login check and `wasmfleet logs`.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import nats.aio.client

CLOSE_WAIT_S = 0.5
"""How long a failed attempt's clean-up may wait for nats-py to see its socket closed."""


async def connect_once(servers: str | list[str], **kwargs: Any) -> nats.aio.client.Client:
    """`nats.connect(servers, allow_reconnect=False, max_reconnect_attempts=0, **kwargs)`, closing
    the client's transport before re-raising when the attempt fails (or is cancelled)."""
    client = nats.aio.client.Client()
    try:
        await client.connect(servers, allow_reconnect=False, max_reconnect_attempts=0, **kwargs)
    except BaseException:
        # close() closes the transport first, then waits for it to be closed; after a failed TLS
        # upgrade that wait never ends (the socket's protocol was swapped for the TLS one, whose
        # loss nats-py's reader is not told of), so the wait is bounded: the socket is closed by
        # then. Closing a client whose connect failed early may also fail inside nats-py; the
        # connect error is the one that matters.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.close(), CLOSE_WAIT_S)
        raise
    return client
