"""NATS authorization as `wasmfleet up` configures it, against a real nats-server and real host agents.

The server runs with the configuration embedded.nats_auth renders from bus.permissions (the same code
`up` uses); two host agents (A and B) join with their own identities. Checks:
- an anonymous client is refused at connect, and a wrong password too;
- host A's identity cannot start a workload on host B: its publish to runtime.host.B.workload.start
  is refused by the server (a permissions violation, the request gets no reply) and B runs nothing;
  nor can it subscribe to B's commands (it never sees what the operator sends B);
- the operator's identity starts a workload on host B (RUNNING, served over HTTP);
- the `logs` identity may ask for logs but not start a workload;
- the data-plane identity uses JetStream key-value in its own account and cannot publish runtime.>;
- bus.login_check turns a refused login into one line naming the role, the user and the options;
- `wasmfleet host` with a wrong password exits at once with that line (no reconnect loop).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import nats
import nats.errors
import pytest

from wasmfleet.artifacts.fetching import ArtifactSettings
from wasmfleet.bus import login_check, messages, permissions, single_attempt, subjects
from wasmfleet.bus.connection_options import NatsConnectionOptions
from wasmfleet.embedded import nats_auth
from wasmfleet.host.agent import Agent
from wasmfleet.host.policy import HostPolicy
from wasmfleet.host.settings import BusSettings, HostSettings, Identity, LifecycleSettings, ServingSettings
from wasmfleet.testing.nats import NatsServer, free_port

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.components.build import build_component

WASMFLEET = str(Path(sys.executable).parent / "wasmfleet")
HOST_A, HOST_B = "host-a-0001", "host-b-0002"


@pytest.fixture(scope="module")
def hello_wasm() -> Path:
    return build_component("hello-wat")


@pytest.fixture
def fleet_auth(tmp_path: Path) -> nats_auth.FleetAuth:
    return nats_auth.write(tmp_path / "nats", host="127.0.0.1", port=free_port(), host_ids=[HOST_A, HOST_B])


@pytest.fixture
def bus(tmp_path: Path, fleet_auth: nats_auth.FleetAuth) -> Iterator[NatsServer]:
    port = json.loads(fleet_auth.config_path.read_text())["listen"].rsplit(":", 1)[1]
    server = NatsServer(tmp_path / "nats", int(port), config=fleet_auth.config_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def login(fleet_auth: nats_auth.FleetAuth, user: str) -> NatsConnectionOptions:
    lg = fleet_auth.login(user)
    return NatsConnectionOptions(user=lg.user, password=lg.password)


@pytest.fixture
async def hosts(tmp_path: Path, bus: NatsServer, fleet_auth: nats_auth.FleetAuth,
                hello_wasm: Path) -> AsyncIterator[dict[str, Agent]]:
    agents = {}
    for host_id in (HOST_A, HOST_B):
        settings = HostSettings(
            identity=Identity(host_id=host_id, labels={"hostgroup": "test"}),
            bus=BusSettings(nats_url=bus.url, heartbeat_interval_s=0.5, reconnect_wait_s=0.1,
                            connection=login(fleet_auth, permissions.host_user(host_id))),
            serving=ServingSettings(http_host="127.0.0.1", http_port=0, workers=1),
            lifecycle=LifecycleSettings(drain_timeout_s=2, data_dir=tmp_path / host_id),
            artifacts=ArtifactSettings(cache_dir=tmp_path / "artifacts"),
            runtime_cache_dir=tmp_path / "compiled",
            policy=HostPolicy.allowing(hello_wasm.parent),
        )
        agents[host_id] = Agent(settings)
    await asyncio.gather(*(agent.start() for agent in agents.values()))
    try:
        yield agents
    finally:
        await asyncio.gather(*(agent.shutdown() for agent in agents.values()))


class Client:
    """A NATS connection as one identity, recording the server's permission errors."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.nc: nats.aio.client.Client | None = None

    async def connect(self, url: str, options: NatsConnectionOptions) -> Client:
        async def on_error(exc: Exception) -> None:
            self.errors.append(str(exc))

        self.nc = await nats.connect(url, error_cb=on_error, allow_reconnect=False, **options.connect_kwargs())
        return self

    def violations(self) -> list[str]:
        return [e for e in self.errors if "permissions violation" in e]


def start_request(workload_id: str, image: str) -> bytes:
    return messages.encode(messages.WorkloadStartRequest(
        workload_id=workload_id,
        workload=messages.Workload(namespace="default", name=workload_id, wit_world=messages.WitWorld(
            components=[messages.Component(name="hello", image=image)],
            host_interfaces=[messages.WitInterface(namespace="wasi", package="http", interfaces=["incoming-handler"],
                                                   config={"host": f"{workload_id}.test"})],
        )),
    ))


async def state_on(client: Client, host_id: str, workload_id: str) -> str:
    assert client.nc is not None
    reply = await client.nc.request(subjects.workload_status(host_id),
                                    json.dumps({"workloadId": workload_id}).encode(), timeout=5)
    return str(json.loads(reply.data)["workloadStatus"]["workloadState"])


async def test_anonymous_and_wrong_password_are_refused(bus: NatsServer, fleet_auth: nats_auth.FleetAuth) -> None:
    with pytest.raises(nats.errors.Error, match="Authorization Violation"):
        await single_attempt.connect_once(bus.url, error_cb=_ignore)  # closes its socket when refused
    wrong = NatsConnectionOptions(user="operator", password="not-the-password")
    with pytest.raises(login_check.LoginRefused) as refused:
        await login_check.check(bus.url, wrong, role="operator")
    message = str(refused.value)
    assert "\n" not in message
    assert message == (f"operator: NATS at {bus.url} refused user 'operator' (Authorization Violation): "
                       "check --nats-user/--nats-password")
    await login_check.check(bus.url, login(fleet_auth, permissions.OPERATOR), role="operator")  # accepted


async def test_a_host_cannot_command_another_host_but_the_operator_can(
    bus: NatsServer, fleet_auth: nats_auth.FleetAuth, hosts: dict[str, Agent], hello_wasm: Path
) -> None:
    image = f"file://{hello_wasm}"
    host_a = await Client().connect(bus.url, login(fleet_auth, permissions.host_user(HOST_A)))
    operator = await Client().connect(bus.url, login(fleet_auth, permissions.OPERATOR))
    assert host_a.nc is not None and operator.nc is not None
    try:
        # Host A's identity tries to eavesdrop on B's commands and to start a workload on B.
        seen: list[str] = []

        async def eavesdrop(msg: nats.aio.msg.Msg) -> None:
            seen.append(msg.subject)

        await host_a.nc.subscribe(subjects.host_commands(HOST_B), cb=eavesdrop)
        with pytest.raises(nats.errors.TimeoutError):
            await host_a.nc.request(subjects.workload_start(HOST_B), start_request("evil", image), timeout=2)
        violations = " ".join(host_a.violations())
        assert f'publish to "{subjects.workload_start(HOST_B)}"' in violations
        assert f'subscription to "{subjects.host_commands(HOST_B)}"' in violations
        assert await state_on(operator, HOST_B, "evil") == "WORKLOAD_STATE_NOT_FOUND"

        # The operator's identity may: B starts it and serves it.
        reply = await operator.nc.request(subjects.workload_start(HOST_B), start_request("good", image), timeout=30)
        status = json.loads(reply.data)["workloadStatus"]
        assert status["workloadState"] == "WORKLOAD_STATE_RUNNING", status
        async with (aiohttp.ClientSession() as session,
                    session.get(f"http://127.0.0.1:{hosts[HOST_B].http_port}/", headers={"Host": "good.test"}) as r):
            assert r.status == 200
        assert seen == []  # host A never saw the operator's command to B
        assert operator.violations() == []
    finally:
        await host_a.nc.close()
        await operator.nc.close()


async def test_logs_identity_reads_logs_but_cannot_start(
    bus: NatsServer, fleet_auth: nats_auth.FleetAuth, hosts: dict[str, Agent], hello_wasm: Path
) -> None:
    cli = await Client().connect(bus.url, login(fleet_auth, permissions.LOGS))
    operator = await Client().connect(bus.url, login(fleet_auth, permissions.OPERATOR))
    assert cli.nc is not None and operator.nc is not None
    try:
        with pytest.raises(nats.errors.TimeoutError):
            await cli.nc.request(subjects.workload_start(HOST_A), start_request("cli", f"file://{hello_wasm}"),
                                 timeout=2)
        assert await state_on(operator, HOST_A, "cli") == "WORKLOAD_STATE_NOT_FOUND"
        reply = await cli.nc.request(subjects.workload_logs(HOST_A), b'{"workloadId": "cli"}', timeout=5)
        assert json.loads(reply.data)["error"]["code"] == 404  # answered: the host just does not run it
        assert any("workload.start" in v for v in cli.violations())
    finally:
        await cli.nc.close()
        await operator.nc.close()


async def test_data_identity_has_jetstream_but_no_control_subjects(
    bus: NatsServer, fleet_auth: nats_auth.FleetAuth, hosts: dict[str, Agent], hello_wasm: Path
) -> None:
    data = await Client().connect(bus.url, login(fleet_auth, permissions.DATA))
    operator = await Client().connect(bus.url, login(fleet_auth, permissions.OPERATOR))
    assert data.nc is not None and operator.nc is not None
    try:
        kv = await data.nc.jetstream().create_key_value(bucket="counters")
        await kv.put("hits", b"1")
        assert (await kv.get("hits")).value == b"1"
        await data.nc.publish(subjects.workload_start(HOST_A), start_request("data", f"file://{hello_wasm}"))
        await data.nc.flush()
        for _ in range(50):
            if data.violations():
                break
            await asyncio.sleep(0.05)
        assert any(subjects.workload_start(HOST_A) in v for v in data.violations())
        assert await state_on(operator, HOST_A, "data") == "WORKLOAD_STATE_NOT_FOUND"
    finally:
        await data.nc.close()
        await operator.nc.close()


def test_host_with_a_wrong_password_exits_with_one_line(bus: NatsServer, tmp_path: Path) -> None:
    env = {**os.environ, "WASMFLEET_HOST_NATS_USER": permissions.host_user(HOST_A),
           "WASMFLEET_HOST_NATS_PASSWORD": "wrong"}
    began = time.monotonic()
    done = subprocess.run(
        [WASMFLEET, "host", "--nats", bus.url, "--host-id", HOST_A, "--data-dir", str(tmp_path / "h")],
        capture_output=True, text=True, env=env, timeout=60,
    )
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip().splitlines() == [
        f"Error: host {HOST_A}: NATS at {bus.url} refused user 'host-{HOST_A}' (Authorization Violation): "
        "check --nats-user/--nats-password"
    ]
    assert time.monotonic() - began < 30


async def _ignore(_exc: Exception) -> None:
    return None
