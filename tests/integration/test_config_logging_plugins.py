"""wasi:config/store@0.2.0-rc.1 and wasi:logging/logging@0.1.0-draft, built-in plugins, from a real guest.

The guest (tests/components/config-logging-py, componentize-py) calls every function of both
interfaces; the host agent runs on a real nats-server and is asked over NATS, as the operator does.

Checks: `get` merges per component, later sources winning: the wasi:config hostInterfaces entry's
config, then localResources.config, then localResources.environment; `get` of a missing key is
Ok(none); `get-all` returns the merged map; each of the six log levels becomes one line of the
workload's log (fetched with the workload.logs command, as `wasmfleet logs` does) with its level
and context, and one host log record at the mapped level (critical as ERROR); a record without
context; a workload granted neither interface gets a "not granted" trap (500) rather than values;
`wasmfleet serve` grants both: --config then --env values, and records on its stderr.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import nats
import pytest

from wasmfleet.bus import messages, subjects
from wasmfleet.host.agent import Agent
from wasmfleet.testing.nats import NatsServer, nats_server

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from plugin_agents import plugin_host_settings, running_agent
from tests.components.build import build_component

REPO = Path(__file__).resolve().parents[2]
WASMFLEET = str(Path(sys.executable).parent / "wasmfleet")

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def guest() -> Path:
    return build_component("config-logging-py")


@pytest.fixture
def bus(tmp_path: Path) -> Iterator[NatsServer]:
    with nats_server(tmp_path / "nats") as server:
        yield server


@pytest.fixture
async def agent(tmp_path: Path, bus: NatsServer) -> AsyncIterator[Agent]:
    async with running_agent(plugin_host_settings(tmp_path, bus.url)) as host:
        yield host


@pytest.fixture
async def nc(bus: NatsServer) -> AsyncIterator[Any]:
    client = await nats.connect(bus.url)
    try:
        yield client
    finally:
        await client.close()


def start_request(workload_id: str, image: Path, entries: list[messages.WitInterface],
                  config: dict[str, str], environment: dict[str, str]) -> bytes:
    http = messages.WitInterface(namespace="wasi", package="http", interfaces=["incoming-handler"],
                                 config={"host": f"{workload_id}.test"})
    component = messages.Component(
        name="cfg", image=f"file://{image}",
        local_resources=messages.LocalResources(config=config, environment=environment),
    )
    return messages.encode(messages.WorkloadStartRequest(
        workload_id=workload_id,
        workload=messages.Workload(namespace="default", name=workload_id, wit_world=messages.WitWorld(
            components=[component], host_interfaces=[http, *entries],
        )),
    ))


CONFIG_ENTRY = messages.WitInterface(
    namespace="wasi", package="config", interfaces=["store"], version="0.2.0-rc.1",
    config={"only-entry": "entry", "entry-and-config": "entry", "all-three": "entry"},
)
LOGGING_ENTRY = messages.WitInterface(namespace="wasi", package="logging", interfaces=["logging"],
                                      version="0.1.0-draft")


async def start(nc: Any, agent: Agent, workload_id: str, body: bytes) -> dict[str, Any]:
    reply = await nc.request(subjects.workload_start(agent.host_id), body, timeout=120)
    status: dict[str, Any] = json.loads(reply.data)["workloadStatus"]
    return status


async def get(port: int, host: str, path: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.get(
        f"http://127.0.0.1:{port}{path}", headers={"Host": host}
    ) as response:
        text = await response.text()
        return response.status, (json.loads(text) if response.status == 200 else text)


async def test_config_merges_sources_and_logging_reaches_the_workload_log(
    agent: Agent, nc: Any, guest: Path, caplog: pytest.LogCaptureFixture
) -> None:
    status = await start(nc, agent, "cfg", start_request(
        "cfg", guest, [CONFIG_ENTRY, LOGGING_ENTRY],
        config={"entry-and-config": "config", "all-three": "config", "config-and-env": "config"},
        environment={"all-three": "env", "config-and-env": "env", "only-env": "env"},
    ))
    assert status["workloadState"] == "WORKLOAD_STATE_RUNNING", status
    port, host = agent.http_port, "cfg.test"
    expected = {
        "only-entry": "entry", "entry-and-config": "config", "all-three": "env",
        "config-and-env": "env", "only-env": "env",
    }
    for key, value in expected.items():
        assert await get(port, host, f"/get?key={key}") == (200, {"key": key, "value": value})
    assert await get(port, host, "/get?key=absent") == (200, {"key": "absent", "value": None})
    assert await get(port, host, "/all") == (200, expected)

    caplog.set_level(logging.DEBUG, logger="wasmfleet.guest")
    assert await get(port, host, "/levels") == (200, "logged")
    assert await get(port, host, "/log?level=info&context=&message=no%20context") == (200, "logged")
    reply = await nc.request(subjects.workload_logs(agent.host_id), b'{"workloadId": "cfg"}', timeout=10)
    lines = [(ln["stream"], ln["component"], ln["text"]) for ln in json.loads(reply.data)["lines"]]
    assert lines == [
        ("log", "cfg", "trace levels: trace record"),
        ("log", "cfg", "debug levels: debug record"),
        ("log", "cfg", "info levels: info record"),
        ("log", "cfg", "warn levels: warn record"),
        ("log", "cfg", "error levels: error record"),
        ("log", "cfg", "error levels: critical record"),
        ("log", "cfg", "info no context"),
    ]
    records = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "wasmfleet.guest"]
    assert records == [
        (logging.DEBUG, "cfg/cfg: trace levels: trace record"),
        (logging.DEBUG, "cfg/cfg: debug levels: debug record"),
        (logging.INFO, "cfg/cfg: info levels: info record"),
        (logging.WARNING, "cfg/cfg: warn levels: warn record"),
        (logging.ERROR, "cfg/cfg: error levels: error record"),
        (logging.ERROR, "cfg/cfg: error levels: critical record"),
        (logging.INFO, "cfg/cfg: info no context"),
    ]


async def test_without_the_entries_the_calls_are_not_granted(agent: Agent, nc: Any, guest: Path) -> None:
    status = await start(nc, agent, "bare", start_request("bare", guest, [], config={"k": "v"}, environment={}))
    assert status["workloadState"] == "WORKLOAD_STATE_RUNNING", status
    assert (await get(agent.http_port, "bare.test", "/get?key=k"))[0] == 500
    assert (await get(agent.http_port, "bare.test", "/levels"))[0] == 500


def test_serve_grants_config_and_logging(guest: Path, tmp_path: Path) -> None:
    with subprocess.Popen(  # the context closes the stderr pipe
        [WASMFLEET, "serve", str(guest), "--addr", "127.0.0.1:0",
         "--cache-dir", str(REPO / ".cache" / "runtime-test-components"),
         "--config", "greeting=hi", "--config", "mode=config", "--env", "mode=env"],
        stderr=subprocess.PIPE, text=True,
    ) as proc:
        try:
            assert proc.stderr is not None
            line = proc.stderr.readline()
            assert "serving" in line, line
            port = int(line.split("http://127.0.0.1:")[1].split("/")[0])

            def fetch(path: str) -> Any:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=60) as response:
                    return json.loads(response.read())

            assert fetch("/get?key=greeting") == {"key": "greeting", "value": "hi"}
            assert fetch("/all") == {"greeting": "hi", "mode": "env"}
            assert fetch("/log?level=critical&context=ctx&message=boom") == "logged"
            assert proc.stderr.readline().rstrip("\n").endswith(": error ctx: boom")
        finally:
            proc.terminate()
            proc.wait(10)
