"""`wasmfleet host` takes its advertised hostname from WASMFLEET_HOSTNAME, as a Kubernetes pod sets it
from the downward API (status.podIP); --hostname on the command line wins over it.

A real `wasmfleet host` process on a real nats-server; the heartbeats it publishes are read off the bus.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import nats
import pytest

from wasmfleet.bus import messages, subjects
from wasmfleet.testing import nats as nats_helper

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def nats_url(tmp_path: Path) -> Iterator[str]:
    with nats_helper.running_nats_server(tmp_path / "nats") as url:
        yield url


async def advertised(tmp_path: Path, nats_url: str, env: dict[str, str], *args: str) -> str:
    nc = await nats.connect(nats_url)
    beats: asyncio.Queue[messages.HostHeartbeat] = asyncio.Queue()

    async def on_beat(msg: nats.aio.msg.Msg) -> None:
        await beats.put(messages.decode(messages.HostHeartbeat, msg.data))

    await nc.subscribe(subjects.operator_heartbeats(), cb=on_beat)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "from wasmfleet.cli.main import main; main()", "host",
        "--heartbeat-interval", "0.2", "--data-dir", str(tmp_path / "host"), *args,
        env={**os.environ, "WASMFLEET_NATS_URL": nats_url, **env},
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )
    try:
        beat = await asyncio.wait_for(beats.get(), 30)
        return beat.hostname
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 20)
        await nc.close()


async def test_hostname_comes_from_the_environment(tmp_path: Path, nats_url: str) -> None:
    assert await advertised(tmp_path, nats_url, {"WASMFLEET_HOSTNAME": "10.9.8.7"}) == "10.9.8.7"


async def test_the_flag_wins_over_the_environment(tmp_path: Path, nats_url: str) -> None:
    got = await advertised(tmp_path, nats_url, {"WASMFLEET_HOSTNAME": "10.9.8.7"}, "--hostname", "10.1.1.1")
    assert got == "10.1.1.1"


async def test_without_either_the_bind_address_is_advertised(
    tmp_path: Path, nats_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WASMFLEET_HOSTNAME", raising=False)
    assert await advertised(tmp_path, nats_url, {}, "--http-addr", "127.0.0.1:0") == "127.0.0.1"
