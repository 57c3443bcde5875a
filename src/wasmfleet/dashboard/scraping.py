"""Scrapes the gateway's and hosts' /metrics on a fixed period and keeps a short history per series.

The dashboard is told where to scrape (`--metrics-url`, repeatable; `wasmfleet up` passes its gateway's)
rather than discovering it: the API holds no metrics addresses, and on a real cluster Prometheus-style
targets are the operator's choice. Each scrape sends the kubeconfig identity's Authorization header, which
a role started with --metrics-auth checks with a TokenReview and SubjectAccessReview.

All URLs are scraped together each tick and summed, so several gateway replicas chart as one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import aiohttp

from wasmfleet.dashboard import traffic

log = logging.getLogger(__name__)

Authorization = Callable[[], Awaitable[str | None]]


async def _no_authorization() -> str | None:
    return None


@dataclass
class TargetState:
    url: str
    error: str = ""
    """Why the last scrape failed ("" when it succeeded)."""
    last_ok: float = 0.0


class Scraper:
    def __init__(self, urls: Sequence[str], *, interval_s: float = 2.0, history: int = 150,
                 authorization: Authorization = _no_authorization) -> None:
        self.targets = [TargetState(u) for u in urls]
        self.interval_s = interval_s
        self._history = history
        self._authorization = authorization
        self.series: dict[traffic.Key, deque[traffic.Point]] = {}
        self.tick = 0
        """Bumped after every scrape round; SSE streams wait on it to push new points."""
        self._ticked = asyncio.Event()  # set and replaced after each round (see watching.FleetWatch)
        self._last: tuple[float, traffic.Snapshot] | None = None

    def points(self, keys: Sequence[traffic.Key]) -> list[dict[str, float | None]]:
        """The history of the sum of `keys` (e.g. every route name of a workload), oldest first."""
        if len(keys) == 1:
            return [p.as_json() for p in self.series.get(keys[0], ())]
        by_time: dict[float, list[traffic.Point]] = {}
        for key in keys:
            for p in self.series.get(key, ()):
                by_time.setdefault(p.time, []).append(p)
        merged = []
        for t, pts in sorted(by_time.items()):
            busiest = max(pts, key=lambda p: p.rps)  # quantiles do not add: show the busiest name's
            merged.append(traffic.Point(t, sum(p.rps for p in pts), sum(p.errors_ps for p in pts),
                                        busiest.p50_ms, busiest.p99_ms).as_json())
        return merged

    async def wait_tick(self, seen: int, timeout_s: float) -> int:
        if self.tick == seen:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ticked.wait(), timeout_s)
        return self.tick

    async def _fetch(self, session: aiohttp.ClientSession, target: TargetState,
                     headers: dict[str, str]) -> traffic.Snapshot | None:
        try:
            async with session.get(target.url, headers=headers) as resp:
                body = await resp.text()
                if resp.status != 200:
                    target.error = f"HTTP {resp.status}: {body.strip()[:200]}"
                    return None
            snap = traffic.parse(body)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            target.error = f"unreachable: {exc or type(exc).__name__}"
            return None
        except ValueError as exc:
            target.error = f"not Prometheus text: {exc}"
            return None
        target.error, target.last_ok = "", time.time()
        return snap

    async def scrape_once(self, session: aiohttp.ClientSession) -> None:
        auth = await self._authorization()
        headers = {"Authorization": auth} if auth else {}
        snaps = await asyncio.gather(*(self._fetch(session, t, headers) for t in self.targets))
        now = time.time()
        current = traffic.merge(s for s in snaps if s is not None)
        if self._last is not None:
            then, previous = self._last
            for key, counts in current.items():
                history = self.series.setdefault(key, deque(maxlen=self._history))
                history.append(traffic.point(counts, previous.get(key), now - then, now))
        self._last = (now, current)
        self.tick += 1
        self._ticked.set()
        self._ticked = asyncio.Event()

    async def run(self) -> None:
        if not self.targets:
            return
        timeout = aiohttp.ClientTimeout(total=max(self.interval_s, 1.0))
        # https targets are verified: the kubeconfig's token goes with every scrape and must not be
        # handed to whoever answers in their place.
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                started = time.monotonic()
                try:
                    await self.scrape_once(session)
                except Exception:  # a scrape must never stop the dashboard
                    log.exception("metrics scrape failed")
                await asyncio.sleep(max(0.0, self.interval_s - (time.monotonic() - started)))
