"""`wasmfleet up` run twice on one data dir: the second run resumes with the state intact.

Checks:
- after `up --apply` the example serves through the gateway; SIGTERM stops `up` with status 0;
- a second `up` on the same DATA_DIR (no --apply) reuses the gateway port and the kubeconfig, the
  WorkloadDeployment is still there, and the example serves again on the new hosts;
- a second `up` on a DATA_DIR already in use is refused with one line.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from pathlib import Path

import aiohttp
import pytest

pytestmark = pytest.mark.timeout(240)

REPO = Path(__file__).resolve().parents[2]
WF = [sys.executable, "-c", "from wasmfleet.cli.main import main; main()"]


async def start_up(data: Path, *extra: str) -> tuple[asyncio.subprocess.Process, list[str]]:
    proc = await asyncio.create_subprocess_exec(
        *WF, "up", "--data-dir", str(data), "--host-groups", "default", *extra,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    lines: list[str] = []

    async def read() -> None:
        assert proc.stdout is not None
        while True:
            line = (await proc.stdout.readline()).decode()
            if not line:
                raise AssertionError("wasmfleet up exited:\n" + "".join(lines))
            lines.append(line)
            if "is serving" in line or ("Ctrl-C stops everything" in line and not extra):
                return

    await asyncio.wait_for(read(), 150)
    return proc, lines


async def serves(base: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        while time.monotonic() < deadline:
            try:
                async with session.get(base + "/", headers={"Host": "hello.localhost"}) as r:
                    if r.status == 200 and await r.text() == "hello from wasmfleet\n":
                        return True
            except (aiohttp.ClientError, TimeoutError):
                pass
            await asyncio.sleep(0.2)
    return False


async def stop(proc: asyncio.subprocess.Process) -> int:
    proc.send_signal(signal.SIGTERM)
    assert proc.stdout is not None
    await proc.stdout.read()
    return await asyncio.wait_for(proc.wait(), 60)


async def test_second_up_resumes_the_first_ones_state(tmp_path: Path) -> None:
    data = tmp_path / "fleet"
    first, lines = await start_up(data, "--apply", str(REPO / "examples" / "hello" / "deployment.yaml"))
    try:
        port = json.loads((data / "ports.json").read_text())["gateway"]
        kubeconfig = (data / "kubeconfig").read_text()
        assert await serves(f"http://127.0.0.1:{port}", 30)

        refused = await asyncio.create_subprocess_exec(
            *WF, "up", "--data-dir", str(data), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        _, err = await refused.communicate()
        assert refused.returncode == 1
        assert err.decode().strip() == f"Error: wasmfleet up is already running for {data} (pid {first.pid})"
    finally:
        assert await stop(first) == 0

    second, lines = await start_up(data)
    try:
        assert json.loads((data / "ports.json").read_text())["gateway"] == port
        assert (data / "kubeconfig").read_text() == kubeconfig
        assert await serves(f"http://127.0.0.1:{port}", 30), "".join(lines)
    finally:
        assert await stop(second) == 0
