"""One WIT interface as the linker sees it, and the result values host functions return."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Interface:
    """One WIT interface: functions by their component import name and the resources it defines."""

    name: str
    functions: dict[str, Callable[..., Any]] = field(default_factory=dict)
    resources: tuple[str, ...] = ()
    version: str = ""
    """The WIT package version it implements ('' = its plugin's version, filled in at load)."""
    blocking: bool = False
    """Its functions may wait on a remote service (a NATS object store): a component granted it
    always runs on the wasm thread, never inline on the server's event loop."""
    blocking_functions: frozenset[str] = frozenset()
    """Those of its functions that may wait when the others never do (wasmcloud:messaging's
    request, not publish): only a component importing one of them runs on the wasm thread. A
    component imports just the functions it calls, so a publisher stays inline."""
    blocking_with: Callable[[Sequence[Mapping[str, str]]], bool] | None = None
    """Decides `blocking` per component instead, from the config of each of the component's
    grants of this interface: wasi:keyvalue waits on a NATS or Redis backend, never on its
    in-memory one, whose guests can then run inline."""
    suspends_with: Callable[[Sequence[Mapping[str, str]]], bool] | None = None
    """For an interface that may block: whether, with these grants' configs, every one of its
    functions can also answer without blocking when the guest runs on an event loop
    (`store_state.WasiContext.loop` is set): then it returns its value at once, or a `Later`, and
    the guest waits suspended on that loop instead of holding a wasm thread. wasi:keyvalue can on
    its NATS and in-memory backends, not on Redis or a disk."""


@dataclass(frozen=True, slots=True)
class Later:
    """A host function's answer that is not there yet: the guest is suspended until `future` is
    done, and its result (the function's WIT value, as it would have been returned) is the
    answer. Only for a guest that runs on an event loop (`store_state.WasiContext.loop`), and
    only from an interface whose `suspends_with` said so. A failed or cancelled future traps the
    guest with that cause."""

    future: asyncio.Future[Any]
    then: Callable[[asyncio.Future[Any]], Any] | None = None
    """Given the done future, the answer instead of its result: the WIT value, or another Later
    to wait on (a retry, say). Called on the loop as the guest resumes, so it spares a task when
    the answer is a reply to map; an exception from it traps the guest like a failed future."""


OK: tuple[str, None] = ("ok", None)
"""`result<_, E>`'s ok case."""


def ok(value: Any = None) -> tuple[str, Any]:
    return ("ok", value)


def err(value: Any = None) -> tuple[str, Any]:
    return ("err", value)
