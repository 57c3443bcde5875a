"""Facts about the machine a host runs on, for heartbeats: OS, kernel, CPU use, memory.

CPU use is measured between two consecutive calls (psutil's non-blocking mode), so a heartbeat
reports the average since the previous heartbeat instead of blocking the event loop to sample.
"""

from __future__ import annotations

import platform
import random
from dataclasses import dataclass

import psutil

_ADJECTIVES = (
    "brave", "calm", "eager", "fancy", "gentle", "happy", "jolly", "keen", "lively", "merry",
    "nimble", "polite", "proud", "quick", "quiet", "rapid", "shiny", "silly", "smart", "snappy",
    "steady", "sunny", "swift", "tidy", "vivid", "witty", "zealous", "bold", "clever", "cosmic",
)
_NOUNS = (
    "otter", "falcon", "badger", "comet", "maple", "harbor", "lynx", "meadow", "pebble", "quasar",
    "raven", "river", "sparrow", "tiger", "walrus", "willow", "yak", "zebra", "beacon", "canyon",
    "dolphin", "ember", "fjord", "glacier", "heron", "island", "jaguar", "koala", "lagoon", "nebula",
)


def friendly_name(rng: random.Random | None = None) -> str:
    """adjective-noun-NNNN, the shape upstream gives Host objects' names."""
    pick = rng or random.SystemRandom()
    return f"{pick.choice(_ADJECTIVES)}-{pick.choice(_NOUNS)}-{pick.randrange(10000):04d}"


@dataclass(frozen=True)
class MachineFacts:
    os_name: str
    os_arch: str
    os_kernel: str
    cpu_usage_percent: float
    memory_total: int
    memory_free: int


def os_name() -> str:
    # upstream reports std::env::consts::OS ("linux", "macos", "windows")
    name = platform.system().lower()
    return "macos" if name == "darwin" else name


def os_arch() -> str:
    machine = platform.machine().lower()
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)


class Machine:
    """Samples machine facts; keep one per host so CPU use is measured between heartbeats."""

    def __init__(self) -> None:
        psutil.cpu_percent(interval=None)  # prime: the first non-blocking call always returns 0.0

    def facts(self) -> MachineFacts:
        memory = psutil.virtual_memory()
        return MachineFacts(
            os_name=os_name(),
            os_arch=os_arch(),
            os_kernel=platform.release(),
            cpu_usage_percent=float(psutil.cpu_percent(interval=None)),
            memory_total=int(memory.total),
            memory_free=int(memory.available),
        )
