"""Helpers shared by the runtime tests: building guests, specs, raw HTTP, `wasmfleet serve` runs."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

from wasmfleet.host.runtime import specs

_BUILD = Path(__file__).resolve().parents[1] / "components" / "build.py"


def _load_build() -> Any:
    spec = importlib.util.spec_from_file_location("wasmfleet_test_components_build", _BUILD)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


components_build = _load_build()


def build(name: str) -> Path:
    """Path of the built guest `name` (see tests/components/README.md)."""
    path: Path = components_build.build_component(name)
    return path


def runtime_settings(**kw: Any) -> specs.RuntimeSettings:
    """RuntimeSettings with the engine switches of this test run (CI runs tests/host twice, the
    second time with WASMFLEET_FASTHOST=0), as `wasmfleet serve`/`host` read them."""
    return specs.RuntimeSettings(engine=specs.EngineSettings.from_environment(os.environ), **kw)


def make_spec(path: Path, workload_id: str = "w1", **kw: Any) -> specs.ComponentSpec:
    return specs.ComponentSpec(workload_id=workload_id, name=workload_id, wasm_path=path, **kw)


async def raw_request(port: int, data: bytes, timeout: float = 10.0) -> tuple[int, bytes]:
    """Sends raw bytes, reads until the server closes; returns (status, body)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    raw = await asyncio.wait_for(reader.read(), timeout)
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    if b"transfer-encoding: chunked" in head.lower():
        body = _dechunk(body)
    return status, body


def _dechunk(data: bytes) -> bytes:
    out = []
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out.append(data[:size])
        data = data[size + 2 :]
    return b"".join(out)


def host_request(host: str, path: str = "/") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
