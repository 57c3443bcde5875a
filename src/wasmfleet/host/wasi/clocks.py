"""wasi:clocks (monotonic-clock, wall-clock)."""

from __future__ import annotations

import time

from wasmfleet.host.plugin_api.interfaces import Interface
from wasmfleet.host.wasi.io import TimerPollable


def _wall_now() -> tuple[int, int]:
    ns = time.time_ns()
    return (ns // 1_000_000_000, ns % 1_000_000_000)


INTERFACES = {
    "wasi:clocks/monotonic-clock": Interface(
        "wasi:clocks/monotonic-clock",
        {
            "now": time.monotonic_ns,
            "resolution": lambda: 1,
            "subscribe-instant": lambda when: TimerPollable(when),
            "subscribe-duration": lambda d: TimerPollable(time.monotonic_ns() + d),
        },
    ),
    "wasi:clocks/wall-clock": Interface(
        "wasi:clocks/wall-clock", {"now": _wall_now, "resolution": lambda: (0, 1)}
    ),
}
