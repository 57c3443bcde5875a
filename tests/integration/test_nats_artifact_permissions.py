"""The artifacts Object Store under `wasmfleet up`'s NATS authorization, against a real nats-server.

The server runs with the configuration embedded.nats_auth renders from bus.permissions (what `up`
writes). The bucket `wasmfleet-artifacts` lives in the CONTROL account. Checks:
- the operator's identity publishes a component to the bucket (artifacts.object_store.upload, the
  Artifact controller's call), lists and deletes objects, with no permission violation;
- a host's identity, connected as the host agent connects (its _HOSTINBOX.<id> inbox prefix), fetches
  that nats:// URL with the host's real Fetcher and gets the same bytes, with no permission violation;
  on the default _INBOX prefix the same read is refused (its replies are not its to hear);
- a host's identity cannot put an object, delete one, purge the stream, create a stream (one
  capturing runtime.>, or another object store bucket), or change the artifacts stream;
- the operator's identity cannot create a stream of another name (one capturing runtime.>, or another
  bucket), nor change the artifacts stream's subjects;
- the data identity (its own account) does not see the bucket at all.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import nats
import nats.aio.client
import nats.errors
import nats.js.api
import nats.js.errors
import pytest

from wasmfleet.artifacts import object_store, references
from wasmfleet.artifacts.errors import ArtifactError
from wasmfleet.artifacts.fetching import ArtifactSettings, Fetcher, PullPolicy
from wasmfleet.bus import permissions, subjects
from wasmfleet.bus.connection_options import NatsConnectionOptions
from wasmfleet.embedded import nats_auth
from wasmfleet.testing.nats import NatsServer, free_port

HOST_A = "host-a-0001"
STREAM = permissions.artifacts_stream()
SHORT = 2.0
"""Seconds a refused JetStream request waits: the server drops it, so it can only time out."""


@pytest.fixture
def fleet_auth(tmp_path: Path) -> nats_auth.FleetAuth:
    return nats_auth.write(tmp_path / "nats", host="127.0.0.1", port=free_port(), host_ids=[HOST_A])


@pytest.fixture
def bus(tmp_path: Path, fleet_auth: nats_auth.FleetAuth) -> Iterator[NatsServer]:
    port = json.loads(fleet_auth.config_path.read_text())["listen"].rsplit(":", 1)[1]
    server = NatsServer(tmp_path / "nats", int(port), config=fleet_auth.config_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


class Client:
    """A NATS connection as one identity, recording the server's permission errors."""

    def __init__(self, nc: nats.aio.client.Client, errors: list[str]) -> None:
        self.nc = nc
        self.errors = errors

    def violations(self) -> list[str]:
        return [e for e in self.errors if "permissions violation" in e.lower()]

    async def refused(self, action: Awaitable[object], subject: str) -> None:
        """`action` fails, and the server reports a permissions violation naming `subject`."""
        with pytest.raises((nats.errors.Error, TimeoutError, ArtifactError)):
            await action
        for _ in range(40):
            if any(subject.lower() in v.lower() for v in self.violations()):
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"no permissions violation for {subject}: {self.errors}")


Connect = Callable[..., Awaitable[Client]]
"""connect(user, inbox_prefix=None): a Client logged in as that identity of the fleet."""


@pytest.fixture
async def connect(bus: NatsServer, fleet_auth: nats_auth.FleetAuth) -> AsyncIterator[Connect]:
    opened: list[nats.aio.client.Client] = []

    async def open_as(user: str, inbox_prefix: str | None = None) -> Client:
        errors: list[str] = []

        async def on_error(exc: Exception) -> None:
            errors.append(str(exc))

        lg = fleet_auth.login(user)
        extra = {"inbox_prefix": inbox_prefix} if inbox_prefix else {}
        nc = await nats.connect(bus.url, error_cb=on_error, allow_reconnect=False,
                                **NatsConnectionOptions(user=lg.user, password=lg.password).connect_kwargs(), **extra)
        opened.append(nc)
        return Client(nc, errors)

    yield open_as
    for nc in opened:
        await nc.close()


async def publish_component(operator: Client, tmp_path: Path, content: bytes) -> str:
    """Upload `content` as the Artifact controller does; the object's digest."""
    path = tmp_path / "component.wasm"
    path.write_bytes(content)
    digest = "sha256:" + hashlib.sha256(content).hexdigest()
    stored = await object_store.upload(operator.nc, digest, path, source="registry.test/hello:1",
                                       media_type="application/wasm")
    assert stored.digest == digest and stored.size == len(content)
    return digest


async def test_operator_publishes_and_a_host_reads(connect: Connect, tmp_path: Path) -> None:
    operator = await connect(permissions.OPERATOR)
    content = b"\0asm" + bytes(range(256)) * 2000  # ~500 KB: several 128 KB chunks
    digest = await publish_component(operator, tmp_path, content)
    assert digest in [o.digest for o in await object_store.list_objects(operator.nc)]

    host = await connect(permissions.host_user(HOST_A), subjects.host_inbox(HOST_A))
    fetcher = Fetcher(ArtifactSettings(cache_dir=tmp_path / "cache"))
    fetcher.attach_nats(host.nc)
    async with fetcher:
        fetched = await fetcher.fetch(object_store.url(digest), policy=PullPolicy.ALWAYS)
    assert fetched.digest == digest and fetched.downloaded
    assert fetched.path.read_bytes() == content
    assert host.violations() == [] and operator.violations() == []

    # The host's replies are for its own inbox prefix only: on _INBOX.> it hears nothing back.
    stray = await connect(permissions.host_user(HOST_A))
    stray_fetcher = Fetcher(ArtifactSettings(cache_dir=tmp_path / "cache2", timeout_s=SHORT * 2))
    stray_fetcher.attach_nats(stray.nc)
    async with stray_fetcher:
        with pytest.raises(ArtifactError):
            await stray_fetcher.fetch(object_store.url(digest), policy=PullPolicy.ALWAYS)
    assert any("subscription to \"_inbox." in v.lower() for v in stray.violations()), stray.errors

    # The operator garbage-collects an unused digest.
    assert await object_store.remove(operator.nc, digest)
    assert digest not in [o.digest for o in await object_store.list_objects(operator.nc)]
    assert operator.violations() == []


async def test_a_host_only_reads(connect: Connect, tmp_path: Path) -> None:
    operator = await connect(permissions.OPERATOR)
    digest = await publish_component(operator, tmp_path, b"\0asm original")
    host = await connect(permissions.host_user(HOST_A), subjects.host_inbox(HOST_A))
    js = host.nc.jetstream(timeout=SHORT)
    store = await js.object_store(permissions.ARTIFACTS_BUCKET)  # stream info: allowed

    await host.refused(store.put("sha256:" + "0" * 64, b"\0asm forged"), f"$O.{permissions.ARTIFACTS_BUCKET}.C.")
    await host.refused(store.delete(digest), f"$O.{permissions.ARTIFACTS_BUCKET}.M.")
    await host.refused(js.purge_stream(STREAM), f"$JS.API.STREAM.PURGE.{STREAM}")
    await host.refused(js.add_stream(name="capture", subjects=["runtime.>"]), "$JS.API.STREAM.CREATE.capture")
    await host.refused(js.create_object_store("mine"), "$JS.API.STREAM.CREATE.OBJ_mine")
    await host.refused(js.update_stream(nats.js.api.StreamConfig(name=STREAM, subjects=["runtime.>"])),
                       f"$JS.API.STREAM.UPDATE.{STREAM}")
    await host.refused(js.delete_stream(STREAM), f"$JS.API.STREAM.DELETE.{STREAM}")
    # Nothing changed: the object still reads back whole.
    assert (await object_store.stat(operator.nc, references.NatsRef(
        permissions.ARTIFACTS_BUCKET, digest))) is not None


async def test_the_operator_creates_no_other_stream(connect: Connect, tmp_path: Path) -> None:
    operator = await connect(permissions.OPERATOR)
    await publish_component(operator, tmp_path, b"\0asm any")
    js = operator.nc.jetstream(timeout=SHORT)
    await operator.refused(js.add_stream(name="capture", subjects=["runtime.>"]), "$JS.API.STREAM.CREATE.capture")
    await operator.refused(js.create_object_store("other"), "$JS.API.STREAM.CREATE.OBJ_other")
    await operator.refused(js.update_stream(nats.js.api.StreamConfig(name=STREAM, subjects=["runtime.>"])),
                           f"$JS.API.STREAM.UPDATE.{STREAM}")
    await operator.refused(js.delete_stream(STREAM), f"$JS.API.STREAM.DELETE.{STREAM}")
    info = await js.stream_info(STREAM)
    assert info.config.subjects == [f"$O.{permissions.ARTIFACTS_BUCKET}.C.>", f"$O.{permissions.ARTIFACTS_BUCKET}.M.>"]


async def test_the_data_identity_does_not_see_the_bucket(connect: Connect, tmp_path: Path) -> None:
    operator = await connect(permissions.OPERATOR)
    await publish_component(operator, tmp_path, b"\0asm private")
    data = await connect(permissions.DATA)
    with pytest.raises(nats.js.errors.BucketNotFoundError):
        await data.nc.jetstream(timeout=SHORT).object_store(permissions.ARTIFACTS_BUCKET)
