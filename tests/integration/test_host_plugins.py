"""Host plugins from a third-party package, found only through the `wasmfleet.host_interfaces` entry point.

The test plugin (tests/plugins/greeter, example:greeting/greeter@0.1.0) is installed with a real
`pip install --target` into a temporary directory put on PYTHONPATH of `wasmfleet serve` and
`wasmfleet host` subprocesses; the guest (tests/components/greeter-py, componentize-py) calls it.

Checks: `wasmfleet serve` runs the guest against the plugin, and without the plugin installed it
refuses the component in one line naming the missing interface; a `wasmfleet host` (real
nats-server) advertises the plugin's package and version in its heartbeat; a start whose
hostInterfaces entry lacks the required key, or names an unknown value, an unknown interface or a
package no plugin provides, answers ERROR (not retryable) naming the entry and the key; a valid one
runs, the guest sees the entry's config, and the plugin's host and workload hooks run in order
(start-host once, start-workload per workload, stop-workload after the stop).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nats
import pytest

from wasmfleet.bus import messages, subjects
from wasmfleet.testing.nats import NatsServer, nats_server

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import plugin_agents
from tests.components.build import build_component

REPO = Path(__file__).resolve().parents[2]
WASMFLEET = str(Path(sys.executable).parent / "wasmfleet")
HOST_ID = "plugin-test-host"

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def greeter_wasm() -> Path:
    return build_component("greeter-py")


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The plugin installed by pip into a directory of its own (built from a copy: pip builds in tree)."""
    work = tmp_path_factory.mktemp("greeter-plugin")
    source = work / "src"
    shutil.copytree(REPO / "tests" / "plugins" / "greeter", source)
    site = work / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target", str(site),
         str(source)],
        check=True, capture_output=True, text=True, timeout=120,
    )
    assert (site / "wasmfleet_greeter_plugin").is_dir()
    return site


def env_with(site: Path | None) -> dict[str, str]:
    env = dict(os.environ)
    if site is not None:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(site), env.get("PYTHONPATH", "")) if p)
    return env


def get(port: int, path: str, host: str = "greeter.test", attempts: int = 50) -> tuple[int, str]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"Host": host})
    for attempt in range(attempts):
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, response.read().decode()
        except ConnectionRefusedError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.1)
        except urllib.error.URLError as exc:
            if not isinstance(exc.reason, ConnectionRefusedError) or attempt == attempts - 1:
                raise
            time.sleep(0.1)
    raise AssertionError("unreachable")


def test_serve_links_the_guest_to_the_installed_plugin(greeter_wasm: Path, plugin_site: Path,
                                                       tmp_path: Path) -> None:
    with subprocess.Popen(  # the context closes the stderr pipe
        [WASMFLEET, "serve", str(greeter_wasm), "--addr", "127.0.0.1:0", "--cache-dir", str(tmp_path),
         "--grant", "example:greeting/greeter"],
        stderr=subprocess.PIPE, text=True, env=env_with(plugin_site),
    ) as proc:
        try:
            assert proc.stderr is not None
            line = proc.stderr.readline()
            assert "serving" in line, line
            port = int(line.split("http://127.0.0.1:")[1].split("/")[0])
            # No hostInterfaces config under `serve`: the plugin's own default salutation.
            assert get(port, "/greet?name=serve") == (200, "Hello, serve!")
            assert get(port, "/events")[1].splitlines() == [
                "start-host -", f"start-workload serve {greeter_wasm.stem} salutation=-"
            ]
        finally:
            proc.terminate()
            proc.wait(10)


def test_serve_without_the_plugin_refuses_the_component(greeter_wasm: Path, tmp_path: Path) -> None:
    proc = subprocess.run(
        [WASMFLEET, "serve", str(greeter_wasm), "--addr", "127.0.0.1:0", "--cache-dir", str(tmp_path),
         "--grant", "example:greeting/greeter"],
        capture_output=True, text=True, timeout=120, env=env_with(None),
    )
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert "imports example:greeting/greeter@0.1.0, which this host does not implement" in lines[0]


@pytest.fixture
def bus(tmp_path: Path) -> Iterator[NatsServer]:
    with nats_server(tmp_path / "nats") as server:
        yield server


@pytest.fixture
def host_process(bus: NatsServer, plugin_site: Path, tmp_path: Path) -> Iterator[int]:
    """A `wasmfleet host` with the plugin installed; yields its HTTP port."""
    with plugin_agents.host_process(tmp_path, bus.url, HOST_ID, env_with(plugin_site)) as port:
        yield port


@pytest.fixture
async def nc(bus: NatsServer) -> AsyncIterator[nats.aio.client.Client]:
    client = await nats.connect(bus.url)
    try:
        yield client
    finally:
        await client.close()


async def ask(nc: nats.aio.client.Client, command: str, payload: bytes, timeout: float = 120) -> dict:
    deadline = time.monotonic() + 30
    while True:
        try:
            reply = await nc.request(subjects.host_command(HOST_ID, command), payload, timeout=timeout)
            return json.loads(reply.data)
        except nats.errors.NoRespondersError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


def start_request(workload_id: str, image: str, entry: messages.WitInterface) -> bytes:
    http = messages.WitInterface(namespace="wasi", package="http", interfaces=["incoming-handler"],
                                 config={"host": f"{workload_id}.test"})
    return messages.encode(messages.WorkloadStartRequest(
        workload_id=workload_id,
        workload=messages.Workload(namespace="default", name=workload_id, wit_world=messages.WitWorld(
            components=[messages.Component(name="greeter", image=image)],
            host_interfaces=[http, entry],
        )),
    ))


def greeting(config: dict[str, str], interfaces: tuple[str, ...] = ("greeter",),
             package: str = "greeting") -> messages.WitInterface:
    return messages.WitInterface(namespace="example", package=package, interfaces=list(interfaces),
                                 version="0.1.0", config=config)


async def start(nc: nats.aio.client.Client, workload_id: str, image: str, entry: messages.WitInterface) -> dict:
    body = await ask(nc, subjects.WORKLOAD_START, start_request(workload_id, image, entry))
    status: dict = body["workloadStatus"]
    return status


async def test_host_advertises_validates_and_runs_the_plugin(
    host_process: int, nc: nats.aio.client.Client, greeter_wasm: Path
) -> None:
    port = host_process
    heartbeat = await ask(nc, subjects.HEARTBEAT, b"")
    advertised = {(i["namespace"], i["package"], i.get("version", "")): i.get("interfaces", [])
                  for i in heartbeat["imports"]}
    assert advertised[("example", "greeting", "0.1.0")] == ["greeter"]
    assert advertised[("wasi", "config", "0.2.0-rc.1")] == ["store"]
    assert advertised[("wasi", "logging", "0.1.0-draft")] == ["logging"]
    image = f"file://{greeter_wasm}"

    missing = await start(nc, "g-missing", image, greeting({}))
    assert missing["workloadState"] == "WORKLOAD_STATE_ERROR", missing
    assert "hostInterfaces entry example:greeting: config.salutation: required" in missing["message"]
    assert missing.get("retryable", False) is False
    unknown_value = await start(nc, "g-style", image, greeting({"salutation": "Hi", "style": "fancy"}))
    assert unknown_value["workloadState"] == "WORKLOAD_STATE_ERROR", unknown_value
    assert ("hostInterfaces entry example:greeting: config.style: unknown value 'fancy' "
            "(expected one of plain, shout)") in unknown_value["message"]
    unknown_key = await start(nc, "g-key", image, greeting({"salutation": "Hi", "colour": "red"}))
    assert "config.colour: unknown key (accepted: salutation, style)" in unknown_key["message"]
    unknown_iface = await start(nc, "g-iface", image, greeting({"salutation": "Hi"}, ("farewell",)))
    assert "hostInterfaces entry example:greeting: interface farewell is not provided" in unknown_iface["message"]
    no_plugin = await start(nc, "g-pkg", image, greeting({}, package="parting"))
    assert "hostInterfaces entry example:parting: no plugin on this host provides example:parting" \
        in no_plugin["message"]

    running = await start(nc, "g1", image, greeting({"salutation": "Howdy"}))
    assert running["workloadState"] == "WORKLOAD_STATE_RUNNING", running
    assert await asyncio.to_thread(get, port, "/greet?name=fleet", "g1.test") == (200, "Howdy, fleet!")
    shouting = await start(nc, "g2", image, greeting({"salutation": "Hey", "style": "shout"}))
    assert shouting["workloadState"] == "WORKLOAD_STATE_RUNNING", shouting
    assert await asyncio.to_thread(get, port, "/greet?name=you", "g2.test") == (200, "HEY, YOU!")
    await ask(nc, subjects.WORKLOAD_STOP, b'{"workloadId": "g1"}')
    _, events = await asyncio.to_thread(get, port, "/events", "g2.test")
    assert events.splitlines() == [
        f"start-host {HOST_ID}",
        "start-workload g1 greeter salutation=Howdy",
        "start-workload g2 greeter salutation=Hey",
        "stop-workload g1",
    ]
