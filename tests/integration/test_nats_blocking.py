"""The keyvalue backend's NATS lanes against real nats-servers: the blocking one of a wasm thread
(host/plugins/nats_blocking.py) and the multiplexed one of a serving loop (nats_loop_lane.py), which
logs in with the first's `Login`; every test below runs on both unless it says otherwise.

- every login it takes: anonymous, user/password (options or URL), token (options or URL), nkey
  seed, and TLS with a client certificate (asked for by the server, with a nats:// URL) or by a
  tls:// URL; a wrong secret is Refused, naming the server's reason;
- replies with headers and status; no responders is NotSent; a reply that comes after its
  attempt gave up is skipped, never taken for the next request's;
- a permissions violation is Refused at once (not waited out);
- a stopped server fails the request well before its deadline, and the next request after the
  server is back connects again; a connection the server closed as stale while it sat unused (its
  PINGs unanswered) is made again for the next request, which succeeds (the loop lane answers
  PINGs as they come, so its connection is not dropped at all); a listener that takes the
  connection but never speaks (a plain socket standing in for a hung server: a real nats-server
  cannot be made to hang so) is given up after 2 s for the next server of the list;
- through the keyvalue NATS backend: a creds-file login and a ws:// server, which the lane cannot
  do, take nats-py; once the host's connections close, a lane fails instead of connecting again.
- the loop lane: many requests in flight on one connection each get their own reply; a payload
  over the server's max_payload is Refused before it is sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import nats
import nkeys
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.deploy.test_nats_connection_options import configured_server, pki, tls_block  # noqa: F401 - pki fixture

from wasmfleet.bus.connection_options import NatsConnectionOptions
from wasmfleet.host.plugin_api.host_plugins import HostContext
from wasmfleet.host.plugins.keyvalue_nats import NatsConnections
from wasmfleet.host.plugins.nats_blocking import BlockingConnection, NotSent, OutcomeUnknown, Refused, Reply
from wasmfleet.host.plugins.nats_loop_lane import LoopLane
from wasmfleet.testing.nats import NatsServer, nats_server

pytestmark = pytest.mark.timeout(120)


def soon(seconds: float = 3.0) -> float:
    return time.monotonic() + seconds


class Blocking:
    """The blocking lane, asked from a thread as a host function on a wasm thread asks it."""

    def __init__(self, servers: list[str], kwargs: dict[str, Any]) -> None:
        self.lane = BlockingConnection(servers, kwargs)

    async def ask(self, subject: str, payload: bytes, seconds: float = 3.0) -> Reply:
        return await asyncio.to_thread(self.lane.request, subject, payload, None, soon(seconds))

    def close(self) -> None:
        self.lane.close()


class OnLoop:
    """The loop lane, asked on the test's event loop as a suspended guest's host call asks it."""

    def __init__(self, servers: list[str], kwargs: dict[str, Any]) -> None:
        self.lane = LoopLane(servers, kwargs)

    async def ask(self, subject: str, payload: bytes, seconds: float = 3.0) -> Reply:
        return await self.lane.request(subject, payload, None, soon(seconds))

    def close(self) -> None:
        self.lane.shut()


@pytest.fixture(params=[Blocking, OnLoop], ids=["blocking", "loop"])
def lane_kind(request: pytest.FixtureRequest) -> type[Blocking | OnLoop]:
    kind: type[Blocking | OnLoop] = request.param
    return kind


@contextlib.asynccontextmanager
async def echo(url: str, options: dict[str, Any] | None = None, delay: float = 0.0) -> AsyncIterator[Any]:
    """A nats-py responder on test.echo answering "echo:<payload>" (after `delay`), with a header."""
    nc = await nats.connect(url, connect_timeout=3, allow_reconnect=False, max_reconnect_attempts=0,
                            **(options or {}))

    async def answer(msg: Any) -> None:
        if delay:
            await asyncio.sleep(delay)
        await nc.publish(msg.reply, b"echo:" + msg.data, headers={"Who": "echo"})

    await nc.subscribe("test.echo", cb=answer)
    await nc.flush()
    try:
        yield nc
    finally:
        await nc.close()


@pytest.fixture
def bus(tmp_path: Path) -> Iterator[NatsServer]:
    with nats_server(tmp_path / "nats") as server:
        yield server


RESPONDER_LOGIN = {"u1:p%2F1@": {"user": "u1", "password": "p/1"}, "s3cret@": {"token": "s3cret"}}


async def test_logins(lane_kind: type[Blocking | OnLoop], tmp_path: Path, pki: Path) -> None:  # noqa: F811 - the pki fixture
    seed = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER)
    public = nkeys.from_seed(bytearray(seed)).public_key.decode()
    other_seed = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER)
    tls = NatsConnectionOptions(tls_ca=pki / "ca.pem", tls_cert=pki / "client.pem",
                                tls_key=pki / "client-key.pem").connect_kwargs()["tls"]
    cases: list[tuple[str, str, dict[str, Any], dict[str, Any], str]] = [
        # (server config, URL userinfo, lane kwargs, wrong kwargs, what the refusal says)
        ("", "", {}, {}, ""),
        ('authorization { users: [ { user: "u1", password: "p/1" } ] }', "", {"user": "u1", "password": "p/1"},
         {"user": "u1", "password": "wrong"}, "authorization violation"),
        ('authorization { users: [ { user: "u1", password: "p/1" } ] }', "u1:p%2F1@", {}, {}, ""),  # decoded
        ('authorization { token: "s3cret" }', "", {"token": "s3cret"}, {"token": "nope"}, "authorization violation"),
        ('authorization { token: "s3cret" }', "s3cret@", {}, {}, ""),
        (f'authorization {{ users: [ {{ nkey: "{public}" }} ] }}', "", {"nkeys_seed_str": seed.decode()},
         {"nkeys_seed_str": other_seed.decode()}, "authorization violation"),
        (tls_block(pki) + '\nauthorization { users: [ { user: "u1", password: "p1" } ] }', "",
         {"tls": tls, "user": "u1", "password": "p1"}, {"tls": tls, "user": "u1", "password": "p2"},
         "authorization violation"),
        (tls_block(pki), "", {"tls": tls, "scheme": "tls"}, {}, ""),
    ]
    for index, (config, userinfo, kwargs, wrong, refusal) in enumerate(cases):
        scheme = kwargs.pop("scheme", "nats")
        where = tmp_path / str(index)
        where.mkdir()
        with configured_server(where, config) as addr:
            # The responder is nats-py, logged in the same way (it does not decode %-escapes in URLs).
            async with echo(f"nats://{addr}", kwargs or RESPONDER_LOGIN.get(userinfo, {})):
                lane = lane_kind([f"{scheme}://{userinfo}{addr}"], kwargs)
                try:
                    reply = await lane.ask("test.echo", b"hi")
                    assert (reply.payload, reply.headers.get("Who"), reply.status) == (b"echo:hi", "echo", 0), config
                    assert (await lane.ask("test.echo", b"again")).payload == b"echo:again"
                finally:
                    lane.close()
            if wrong:
                bad = lane_kind([f"nats://{addr}"], wrong)
                with pytest.raises(Refused) as refused:
                    await bad.ask("test.echo", b"hi")
                assert refusal in str(refused.value).lower() and addr in str(refused.value), refused.value


async def test_status_no_responders_and_late_replies(lane_kind: type[Blocking | OnLoop], bus: NatsServer) -> None:
    lane = lane_kind([bus.url], {})
    try:
        with pytest.raises(NotSent, match="no responders"):
            await lane.ask("nobody.listens", b"x")
        async with echo(bus.url, delay=0.5):
            began = time.monotonic()
            with pytest.raises(OutcomeUnknown, match="no reply in time"):
                await lane.ask("test.echo", b"first", seconds=0.2)
            assert time.monotonic() - began < 0.45
            # The late reply to "first" arrives while this one waits: it is not taken for its own.
            assert (await lane.ask("test.echo", b"second", seconds=3)).payload == b"echo:second"
        # A JetStream direct get of a missing message: a reply with a status line and no body.
        nc = await nats.connect(bus.url)
        try:
            await nc.jetstream().create_key_value(bucket="lane", direct=True)
        finally:
            await nc.close()
        missing = await lane.ask("$JS.API.DIRECT.GET.KV_lane.$KV.lane.nothing", b"")
        assert (missing.status, missing.payload) == (404, b""), missing
    finally:
        lane.close()


async def test_permissions_violation_is_refused_at_once(lane_kind: type[Blocking | OnLoop], tmp_path: Path) -> None:
    config = ('authorization { users: [ { user: "u1", password: "p1", permissions: '
              '{ publish: ["allowed.>"], subscribe: ["_INBOX.>"] } } ] }')
    with configured_server(tmp_path, config) as addr:
        lane = lane_kind([f"nats://{addr}"], {"user": "u1", "password": "p1"})
        try:
            began = time.monotonic()
            with pytest.raises(Refused, match=r"(?i)permissions violation"):
                await lane.ask("denied.subject", b"x", seconds=10)
            assert time.monotonic() - began < 2
        finally:
            lane.close()


async def test_server_down_and_back(lane_kind: type[Blocking | OnLoop], bus: NatsServer) -> None:
    lane = lane_kind([bus.url], {})
    try:
        async with echo(bus.url):
            assert (await lane.ask("test.echo", b"1")).payload == b"echo:1"
        bus.stop()
        began = time.monotonic()
        with pytest.raises((NotSent, OutcomeUnknown)) as down:
            await lane.ask("test.echo", b"2", seconds=5)
        assert time.monotonic() - began < 2, "a stopped server must fail the request at once"
        assert bus.url.removeprefix("nats://") in str(down.value) or "connection" in str(down.value), down.value
        bus.start()
        async with echo(bus.url):
            assert (await lane.ask("test.echo", b"3")).payload == b"echo:3"
    finally:
        lane.close()


async def test_a_connection_dropped_while_unused_is_made_again(lane_kind: type[Blocking | OnLoop],
                                                               tmp_path: Path) -> None:
    with configured_server(tmp_path, 'ping_interval: "100ms"\nping_max: 1\ndebug: true') as addr:
        async with echo(f"nats://{addr}"):
            lane = lane_kind([f"nats://{addr}"], {})
            try:
                assert (await lane.ask("test.echo", b"1")).payload == b"echo:1"
                # Unused, the blocking lane answers no PING: the server closes it as stale. The loop
                # lane reads all the time and answers them.
                await asyncio.sleep(1.5)
                began = time.monotonic()
                assert (await lane.ask("test.echo", b"2")).payload == b"echo:2"
                assert time.monotonic() - began < 1
            finally:
                lane.close()
        stale = "stale connection" in (tmp_path / "nats.log").read_text().lower()
        assert stale is (lane_kind is Blocking)


async def test_a_hung_server_is_left_for_the_next(lane_kind: type[Blocking | OnLoop], bus: NatsServer) -> None:
    with socket.socket() as hung:
        hung.bind(("127.0.0.1", 0))
        hung.listen()
        lane = lane_kind([f"nats://127.0.0.1:{hung.getsockname()[1]}", bus.url], {})
        try:
            async with echo(bus.url):
                began = time.monotonic()
                assert (await lane.ask("test.echo", b"hi", seconds=8)).payload == b"echo:hi"
                assert 1.9 < time.monotonic() - began < 4
        finally:
            lane.close()


def test_a_creds_login_and_websocket_take_nats_py(tmp_path: Path) -> None:
    creds = tmp_path / "user.creds"
    creds.write_text("-----BEGIN NATS USER JWT-----\nx\n------END NATS USER JWT------\n")
    url = "nats://127.0.0.1:4222"
    connections = NatsConnections(HostContext(nats_url=url, nats_connection=NatsConnectionOptions(creds=creds)))
    try:
        assert connections.lane(url) is None
        assert connections.lane("ws://127.0.0.1:4444") is None  # WebSocket: nats-py's transport
        # Another server named by an entry's config.url uses no host login: it gets a lane, one per thread.
        mine = connections.lane("nats://127.0.0.1:4333")
        assert mine is not None and connections.lane("nats://127.0.0.1:4333") is mine
        theirs: list[Any] = []
        thread = threading.Thread(target=lambda: theirs.append(connections.lane("nats://127.0.0.1:4333")))
        thread.start()
        thread.join()
        assert theirs[0] is not None and theirs[0] is not mine
    finally:
        connections.close()


async def test_lanes_stop_with_the_host(bus: NatsServer) -> None:
    connections = NatsConnections(HostContext(nats_url=bus.url))
    lane = connections.lane(bus.url)
    assert lane is not None
    async with echo(bus.url):
        assert (await asyncio.to_thread(lane.request, "test.echo", b"1", None, soon())).payload == b"echo:1"
        connections.close()
        with pytest.raises(Refused, match="stopping"):
            await asyncio.to_thread(lane.request, "test.echo", b"2", None, soon())


async def test_loop_lanes_stop_with_the_host(bus: NatsServer) -> None:
    """The serving loop's connections, closed from that loop as the host stops."""
    connections = NatsConnections(HostContext(nats_url=bus.url), asyncio.get_running_loop())
    lane = connections.loop_lane(bus.url)
    assert lane is not None and connections.loop_lane(bus.url) is lane
    async with echo(bus.url):
        assert (await lane.request("test.echo", b"1", None, soon())).payload == b"echo:1"
        connections.close()
        await asyncio.sleep(0.1)  # the closing runs on this loop
        with pytest.raises(Refused, match="stopping"):
            await lane.request("test.echo", b"2", None, soon())


async def test_loop_lane_many_in_flight_and_too_large(bus: NatsServer) -> None:
    lane = OnLoop([bus.url], {})
    try:
        async with echo(bus.url):
            replies = await asyncio.gather(*(lane.ask("test.echo", b"%d" % i) for i in range(200)))
            assert [r.payload for r in replies] == [b"echo:%d" % i for i in range(200)]
            with pytest.raises(Refused, match="maximum payload exceeded"):
                await lane.ask("test.echo", b"x" * (2 << 20))
            assert (await lane.ask("test.echo", b"after")).payload == b"echo:after"
    finally:
        lane.close()


def test_websocket_urls_take_nats_py_on_a_serving_loop() -> None:
    loop = asyncio.new_event_loop()
    connections = NatsConnections(HostContext(), loop)
    try:
        assert connections.loop_lane("tls://127.0.0.1:4222") is not None
        assert connections.loop_lane("ws://127.0.0.1:4444") is None
        assert connections.loop_lane("nats://127.0.0.1:4222") is not None
    finally:
        connections.close()
        loop.close()
