"""HTTP load from wrk (Debian package `wrk`), shared by the benchmarks: a C load generator costs the
2-core machine a small part of what an asyncio client would, so the server under test keeps the CPU."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass

_SCALE_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


@dataclass(frozen=True)
class WrkResult:
    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    failed: int
    """Responses other than 2xx/3xx, and socket errors."""


def have_wrk() -> bool:
    return shutil.which("wrk") is not None


def _latency_ms(out: str, percentile: str) -> float:
    found = re.search(rf"\b{percentile}%\s+([\d.]+)(us|ms|s)\b", out)
    if found is None:
        raise RuntimeError(f"wrk printed no {percentile}% latency:\n{out}")
    return float(found.group(1)) * _SCALE_MS[found.group(2)]


def wrk(url: str, host: str, seconds: float, connections: int) -> WrkResult:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency", "-H", f"Host: {host}", url],
        capture_output=True, text=True, check=True,
    ).stdout
    requests = re.search(r"(\d+) requests in", out)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if requests is None or rps is None:
        raise RuntimeError(f"unexpected wrk output:\n{out}")
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    failed = (int(non_2xx.group(1)) if non_2xx else 0) + (sum(map(int, errors.groups())) if errors else 0)
    return WrkResult(int(requests.group(1)), float(rps.group(1)), _latency_ms(out, "50"), _latency_ms(out, "99"),
                     failed)
