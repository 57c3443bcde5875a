"""wasi:random (random, insecure, insecure-seed), from the OS CSPRNG."""

from __future__ import annotations

import os

from wasmfleet.host.plugin_api.interfaces import Interface


def _u64() -> int:
    return int.from_bytes(os.urandom(8), "little")


INTERFACES = {
    "wasi:random/random": Interface(
        "wasi:random/random", {"get-random-bytes": os.urandom, "get-random-u64": _u64}
    ),
    "wasi:random/insecure": Interface(
        "wasi:random/insecure",
        {"get-insecure-random-bytes": os.urandom, "get-insecure-random-u64": _u64},
    ),
    "wasi:random/insecure-seed": Interface(
        "wasi:random/insecure-seed", {"insecure-seed": lambda: (_u64(), _u64())}
    ),
}
