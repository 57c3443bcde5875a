"""One WIT interface as the linker sees it, and the result values host functions return."""

from __future__ import annotations

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


OK: tuple[str, None] = ("ok", None)
"""`result<_, E>`'s ok case."""


def ok(value: Any = None) -> tuple[str, Any]:
    return ("ok", value)


def err(value: Any = None) -> tuple[str, Any]:
    return ("err", value)
