"""The controller runner: workers pull keys from a WorkQueue and call a level-triggered reconcile.

`reconcile(key)` re-reads the world for that key and moves it one step toward the desired state; it
returns None when done or a delay after which the key must be looked at again (e.g. waiting for a
host to report). Errors decide what happens next: `PermanentError` (and non-temporary API errors) are
logged and not retried until the object changes; anything else is requeued with per-key backoff.
At most `concurrency` reconciles run at once, and never two for the same key.
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import logging
import time
from collections.abc import Awaitable, Callable

from wasmfleet.kube import errors, queueing

log = logging.getLogger(__name__)

Reconcile = Callable[[str], Awaitable[float | None]]
# (controller name, result "success" | "requeue" | "error" | "permanent", seconds taken)
Observer = Callable[[str, str, float], None]

# The id of the reconcile running in this task, for log lines (see ReconcileIdFilter).
reconcile_id: contextvars.ContextVar[str] = contextvars.ContextVar("reconcile_id", default="-")
_ids = itertools.count(1)


class PermanentError(Exception):
    """Retrying cannot help (the object is wrong); the message is recorded on the object."""


class RetryLater(Exception):
    """Not an error: a precondition is not met yet (e.g. a host cannot be judged); retry with backoff."""


class ReconcileIdFilter(logging.Filter):
    """Adds `%(reconcile_id)s` to every record so one reconcile's log lines can be followed."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.reconcile_id = reconcile_id.get()
        return True


class Controller:
    def __init__(
        self,
        name: str,
        reconcile: Reconcile,
        *,
        concurrency: int = 4,
        queue: queueing.WorkQueue | None = None,
        observe: Observer | None = None,
    ) -> None:
        self.name = name
        # Not `queue or ...`: an empty WorkQueue is falsy (it has __len__), and was silently replaced.
        self.queue = queue if queue is not None else queueing.WorkQueue()
        self._reconcile = reconcile
        self._concurrency = concurrency
        self._observe = observe

    async def run(self) -> None:
        """Run the workers until cancelled."""
        workers = [asyncio.create_task(self._worker()) for _ in range(self._concurrency)]
        try:
            await asyncio.gather(*workers)
        finally:
            for worker in workers:
                worker.cancel()
            await self.queue.shutdown()

    async def _worker(self) -> None:
        while True:
            key = await self.queue.get()
            if key is None:
                return
            token = reconcile_id.set(f"{self.name}#{next(_ids)}")
            started = time.perf_counter()
            result = "success"
            try:
                after = await self._reconcile(key)
                self.queue.forget(key)
                if after is not None:
                    result = "requeue"
                    self.queue.add_after(key, after)
            except asyncio.CancelledError:
                raise
            except (PermanentError, RetryLater, errors.KubeError) as exc:
                if isinstance(exc, RetryLater) or (isinstance(exc, errors.KubeError) and exc.temporary):
                    result = "error"
                    delay = self.queue.add_rate_limited(key)
                    log.info("%s %s: %s (retry in %.2fs)", self.name, key, exc, delay)
                else:
                    result = "permanent"
                    self.queue.forget(key)
                    log.warning("%s %s: %s (not retried until it changes)", self.name, key, exc)
            except Exception as exc:
                result = "error"
                delay = self.queue.add_rate_limited(key)
                level = logging.INFO if getattr(exc, "retryable", False) else logging.WARNING
                log.log(level, "%s %s: %s: %s (retry in %.2fs)", self.name, key, type(exc).__name__, exc,
                        delay, exc_info=level == logging.WARNING)
            finally:
                self.queue.done(key)
                reconcile_id.reset(token)
                if self._observe is not None:
                    self._observe(self.name, result, time.perf_counter() - started)
