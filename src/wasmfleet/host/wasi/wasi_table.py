"""The table of WASI interfaces this host implements in Python."""

from __future__ import annotations

import functools
import importlib.metadata
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Interface:
    """One WIT interface: functions by their component import name and the resources it defines."""

    name: str
    functions: dict[str, Callable[..., Any]] = field(default_factory=dict)
    resources: tuple[str, ...] = ()


ENTRY_POINT_GROUP = "wasmfleet.host_interfaces"
"""Host plugins register here: each entry point loads a dict[str, Interface] (like INTERFACES)."""


@functools.cache
def all_interfaces() -> dict[str, Interface]:
    """Every interface this host can link, keyed by "namespace:package/interface" (no version).

    The WASI modules here, listed by hand, plus plugins found through the entry-point group
    `wasmfleet.host_interfaces` (nothing registers itself at import time). A plugin function
    reads its workload's settings from `wasi.store_state.state()` (config, grants, environment).
    """
    from wasmfleet.host.wasi import cli, clocks, filesystem, http, io, random, sockets

    found: dict[str, Interface] = {}
    for module in (io, clocks, random, cli, filesystem, sockets, http):
        found.update(module.INTERFACES)
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        found.update(ep.load())
    return found


OK: tuple[str, None] = ("ok", None)


def ok(value: Any = None) -> tuple[str, Any]:
    return ("ok", value)


def err(value: Any = None) -> tuple[str, Any]:
    return ("err", value)
