"""The controller runner: workers pull keys from a WorkQueue and call a level-triggered reconcile.

`reconcile(key)` re-reads the world for that key and moves it one step toward the desired state; it
returns None when done or a delay after which the key must be looked at again (e.g. waiting for a
host to report). Failures speak one vocabulary, and this runner is the one place that turns it into
queue actions:

- `PermanentError`: retrying cannot help; logged, counted as "permanent", and not requeued (the
  object's next change brings the key back through its informer);
- `TemporaryError(delay=d)`: look again after d seconds, or after the key's exponential backoff
  when no delay is given;
- API errors (`errors.KubeError`) are temporary or permanent as their `temporary` says;
- anything else is a bug or an unforeseen failure: logged with its traceback, retried with backoff.

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
    """Retrying cannot help until the object changes (it is wrong, or what it asks for cannot be)."""


class TemporaryError(Exception):
    """Asking again later may succeed: after `delay` seconds, or the key's backoff when None."""

    def __init__(self, message: str, *, delay: float | None = None) -> None:
        super().__init__(message)
        self.delay = delay


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
            except (PermanentError, TemporaryError, errors.KubeError) as exc:
                if isinstance(exc, TemporaryError) or (isinstance(exc, errors.KubeError) and exc.temporary):
                    result = "error"
                    delay = getattr(exc, "delay", None)
                    if delay is None:
                        delay = self.queue.add_rate_limited(key)
                    else:
                        self.queue.add_after(key, delay)
                    log.info("%s %s: %s (retry in %.2fs)", self.name, key, exc, delay)
                else:
                    result = "permanent"
                    self.queue.forget(key)
                    log.warning("%s %s: %s (not retried until it changes)", self.name, key, exc)
            except Exception as exc:
                result = "error"
                delay = self.queue.add_rate_limited(key)
                log.warning("%s %s: %s: %s (retry in %.2fs)", self.name, key, type(exc).__name__, exc, delay,
                            exc_info=True)
            finally:
                self.queue.done(key)
                reconcile_id.reset(token)
                if self._observe is not None:
                    self._observe(self.name, result, time.perf_counter() - started)
