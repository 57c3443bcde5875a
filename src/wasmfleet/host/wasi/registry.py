"""The table of WASI interfaces this host implements in Python."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Interface:
    """One WIT interface: functions by their component import name and the resources it defines."""

    name: str
    functions: dict[str, Callable[..., Any]] = field(default_factory=dict)
    resources: tuple[str, ...] = ()


def all_interfaces() -> dict[str, Interface]:
    """Every interface implemented here, keyed by "namespace:package/interface" (no version)."""
    from wasmfleet.host.wasi import cli, clocks, filesystem, http, io, random, sockets

    found: dict[str, Interface] = {}
    for module in (io, clocks, random, cli, filesystem, sockets, http):
        found.update(module.INTERFACES)
    return found


OK: tuple[str, None] = ("ok", None)


def ok(value: Any = None) -> tuple[str, Any]:
    return ("ok", value)


def err(value: Any = None) -> tuple[str, Any]:
    return ("err", value)
