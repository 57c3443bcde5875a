"""Loading a component on a thread without losing it when the caller goes away.

A route or a subscription loads its component with `asyncio.to_thread` (compiling, instantiating
the warm-up). When the awaiting task is cancelled meanwhile (a tier-up cancelled by `stop`, a
route replaced), the thread still finishes and its result used to be dropped unclosed: its warm
instances kept their wasmtime stores, and a linked one stayed registered for the forwarders
(`crossing._ACTIVE`) for the life of the process. Here the result is closed instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol, TypeVar


class Closable(Protocol):
    def close(self) -> None: ...


T = TypeVar("T", bound=Closable)


async def load_owned(load: Callable[[], T]) -> T:
    """Runs `load` on a thread and returns its result; if the caller is cancelled before it
    ends, the result is closed when it arrives."""
    task = asyncio.ensure_future(asyncio.to_thread(load))
    try:
        # shield: cancelling the caller must not cancel `task`, or its result would be lost.
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        task.add_done_callback(_close_result)
        raise


def _close_result(task: asyncio.Future[T]) -> None:
    if not task.cancelled() and task.exception() is None:
        task.result().close()
