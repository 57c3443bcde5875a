"""A workload's recent log lines, fetched from its host over NATS exactly as `wasmfleet logs` does.

The host keeps a bounded file per workload and answers runtime.host.<hostID>.workload.logs (see
docs/protocol.md). The dashboard asks with the fleet's `logs` NATS identity (`wasmfleet up` hands it
over; elsewhere --nats-user/--nats-creds...), which may send only that request. Without --nats the
per-workload page says where the lines would come from instead of showing them.

One connection is opened on first use and reused; a failed connect is retried at most every few seconds.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC
from typing import Any

import nats
import nats.errors

from wasmfleet.bus import messages, requests, subjects
from wasmfleet.bus.connection_options import NatsConnectionOptions

RETRY_CONNECT_S = 5.0


@dataclass(frozen=True)
class Tail:
    lines: list[str]
    error: str = ""


class LogReader:
    def __init__(self, url: str | None, options: NatsConnectionOptions | None = None) -> None:
        self.url = url
        self._options = options or NatsConnectionOptions()
        self._nc: Any = None
        self._failed_at = 0.0
        self._error = ""
        self._lock = asyncio.Lock()

    async def _connection(self) -> Any:
        async with self._lock:
            if self._nc is not None and not self._nc.is_closed:
                return self._nc
            if time.monotonic() - self._failed_at < RETRY_CONNECT_S:
                return None
            assert self.url is not None
            try:
                servers = [s.strip() for s in self.url.split(",") if s.strip()]
                self._nc = await nats.connect(servers, connect_timeout=2, max_reconnect_attempts=-1,
                                              error_cb=_quiet, **self._options.connect_kwargs())
            except (nats.errors.Error, OSError, TimeoutError) as exc:
                self._failed_at = time.monotonic()
                self._error = f"cannot reach NATS at {self.url}: {exc or type(exc).__name__}"
                return None
            return self._nc

    async def tail(self, host_id: str, workload_id: str, lines: int = 100) -> Tail:
        if not self.url:
            return Tail([], "no NATS URL given (--nats): log lines are not available here")
        if not host_id:
            return Tail([], "not placed on a host yet")
        nc = await self._connection()
        if nc is None:
            return Tail([], self._error)
        request = messages.WorkloadLogsRequest(workload_id=workload_id, tail_lines=lines)
        try:
            answer = await requests.request(nc, subjects.workload_logs(host_id), request,
                                            messages.WorkloadLogsResponse,
                                            timeout_s=subjects.TIMEOUTS_S[subjects.WORKLOAD_LOGS])
        except (requests.NoResponders, requests.RequestTimeout):
            return Tail([], f"host {host_id} is not answering on NATS")
        except requests.BusError as exc:
            return Tail([], f"host {host_id} says: {exc.reason}")
        return Tail([_render(line) for line in answer.lines])

    async def close(self) -> None:
        if self._nc is not None:
            await self._nc.close()


def _render(line: messages.LogLine) -> str:
    stamp = line.time.astimezone(UTC).strftime("%H:%M:%S") if line.time is not None else ""
    return " ".join(p for p in (stamp, f"[{line.component}]" if line.component else "", line.text) if p)


async def _quiet(_exc: Exception) -> None:
    return None  # reconnects are nats-py's business; a failed fetch is reported on the page
