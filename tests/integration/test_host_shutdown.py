"""Graceful stop of `wasmfleet host` (the real command, as a subprocess) and of the agent in-process.

Checks: the command joins the fleet (heartbeat on the bus, workload started over NATS, HTTP 200);
on SIGTERM it announces leaving on runtime.operator.leaving.<hostID> with its last heartbeat,
finishes an HTTP request that was in flight, and exits 0 within the drain bound; during a drain a
new start is answered ERROR "host is shutting down" while the in-flight start still completes;
bad command-line values fail with one line naming the option, no traceback.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import nats
import pytest
from click.testing import CliRunner
from slow_source import serving_slowly

from wasmfleet.bus import messages, subjects
from wasmfleet.cli import main
from wasmfleet.host.agent import Agent
from wasmfleet.testing.nats import running_nats_server

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.components.build import build_component, cache_dir
from tests.integration.test_host_agent import host_settings, start_request

WASMFLEET = str(Path(sys.executable).parent / "wasmfleet")


@pytest.fixture(scope="module")
def hello_wasm() -> Path:
    return build_component("hello-wat")


async def test_sigterm_announces_leaving_and_finishes_in_flight_requests(
    tmp_path: Path, hello_wasm: Path
) -> None:
    with running_nats_server(tmp_path / "nats") as url:
        nc = await nats.connect(url)
        heartbeats = await nc.subscribe(subjects.operator_heartbeats())
        leavings = await nc.subscribe(subjects.operator_leavings())
        proc = subprocess.Popen(
            [WASMFLEET, "host", "--nats", url, "--group", "edge", "--label", "tier=gold",
             "--heartbeat-interval", "0.5", "--data-dir", str(tmp_path / "data"),
             "--cache-dir", str(tmp_path / "cache"), "--drain-timeout", "5", "--log-level", "warning",
             "--allow-file-root", str(cache_dir())],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            env={**os.environ, "XDG_CACHE_HOME": str(tmp_path / "xdg")},
        )
        try:
            hb = json.loads((await heartbeats.next_msg(timeout=20)).data)
            assert hb["labels"] == {"hostgroup": "edge", "tier": "gold"}
            host_id, port = hb["id"], hb["httpPort"]
            reply = await nc.request(
                subjects.workload_start(host_id), start_request("w", f"file://{hello_wasm}"), timeout=30
            )
            assert json.loads(reply.data)["workloadStatus"]["workloadState"] == "WORKLOAD_STATE_RUNNING"

            # A request whose body is still arriving when SIGTERM comes must be completed.
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"POST /echo HTTP/1.1\r\nHost: hello.test\r\nContent-Length: 10\r\n\r\nhello")
            await writer.drain()
            await asyncio.sleep(0.2)
            t0 = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            leaving = json.loads((await leavings.next_msg(timeout=5)).data)
            assert leaving["id"] == host_id and leaving["workloadCount"] == "1"
            writer.write(b" host")
            await writer.drain()
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert head.split()[1] == b"200"
            body = await asyncio.wait_for(reader.read(), 5)
            if b"chunked" in head.lower():
                body = dechunk(body)
            assert body == b"hello host"
            writer.close()
            assert await asyncio.to_thread(proc.wait, 10) == 0
            assert time.monotonic() - t0 < 7
            assert b"Traceback" not in proc.stderr.read()  # type: ignore[union-attr]
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stderr.close()  # type: ignore[union-attr]
            await nc.close()


def dechunk(data: bytes) -> bytes:
    out = b""
    while True:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            return out
        out, data = out + data[:size], data[size + 2:]


@pytest.fixture
async def slow_source(hello_wasm: Path) -> AsyncIterator[str]:
    async with serving_slowly(hello_wasm.read_bytes(), 1.0) as url:
        yield url


async def test_draining_host_refuses_new_starts_and_completes_in_flight_ones(
    tmp_path: Path, slow_source: str, hello_wasm: Path
) -> None:
    with running_nats_server(tmp_path / "nats") as url:
        agent = Agent(host_settings(tmp_path, url))
        await agent.start()
        nc = await nats.connect(url)
        try:
            leavings = await nc.subscribe(subjects.operator_leaving(agent.host_id))
            in_flight = asyncio.create_task(
                nc.request(subjects.workload_start(agent.host_id), start_request("slow", slow_source), timeout=10)
            )
            await asyncio.sleep(0.2)
            stopping = asyncio.create_task(agent.shutdown())
            await leavings.next_msg(timeout=5)
            refused = await nc.request(
                subjects.workload_start(agent.host_id), start_request("new", f"file://{hello_wasm}"), timeout=5
            )
            status = messages.decode(messages.WorkloadStartResponse, refused.data).workload_status
            assert status.workload_state is messages.WorkloadState.ERROR
            assert status.message == "host is shutting down"
            done = messages.decode(messages.WorkloadStartResponse, (await in_flight).data).workload_status
            assert done.workload_state is messages.WorkloadState.RUNNING
            await asyncio.wait_for(stopping, 10)
        finally:
            await agent.shutdown()
            await nc.close()


def test_bad_command_line_values_fail_in_one_line() -> None:
    runner = CliRunner()
    for args, expected in (
        (["--label", "novalue"], "is not key=value"),
        (["--http-addr", "127.0.0.1:notaport"], "is not a number"),
        (["--host-id", "a.b"], "cannot be a NATS subject token"),
    ):
        result = runner.invoke(main.cli, ["host", *args])
        assert result.exit_code == 2, args
        assert expected in result.output
        assert result.exception is None or isinstance(result.exception, SystemExit)
