"""The NATS backend: a container is a JetStream Object Store bucket of the same name.

create-container creates the bucket (an error when it exists), get-container fails when it is
absent. Bodies stream both ways through a `BytePipe` of bounded size:

- write: nats-py's streaming `ObjectStore.put` reads the pipe (its `readinto` runs in the bridge's
  executor) while the guest writes into it; the object appears when the put publishes its meta
  message at `commit`, and an aborted put leaves the previous object as it was;
- read: the object's chunks come from an ephemeral pull consumer on its chunk subject (nats-py's
  `get` uses a push consumer and collects one buffer), a batch at a time while the pipe has room;
  bytes outside the requested range are dropped, the consumer is deleted once the range is
  complete, and a whole-object read checks the SHA-256 digest.

nats-py's exceptions become BlobstoreError here (`_mapped`), with the cause in the message.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import contextlib
import hashlib
import io
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Any, TypeVar, cast

from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.api import ObjectInfo as NatsObjectInfo
from nats.js.errors import NotFoundError, ObjectNotFoundError
from nats.js.object_store import OBJ_CHUNKS_PRE_TEMPLATE, OBJ_STREAM_TEMPLATE, ObjectStore

from wasmfleet.host.plugin_api import store_state
from wasmfleet.host.plugins.blobstore.backends import (
    Backend,
    BlobstoreError,
    ContainerInfo,
    ObjectInfo,
    ObjectReader,
    ObjectWriter,
    clamp_range,
    container_exists,
    no_such_container,
    no_such_object,
)
from wasmfleet.host.plugins.blobstore.byte_pipes import BytePipe, PipeFailed
from wasmfleet.host.plugins.blobstore.nats_bridge import NatsBridge, describe

T = TypeVar("T")

CHUNK_WAIT_S = 5.0
"""How long a read waits for the object's next chunks before failing (NATS went away)."""
FETCH_CHUNKS = 8
"""Chunks asked for at once by a read (1 MB at nats-py's default 128 KiB chunks)."""


def _epoch(iso: str | None) -> int:
    if not iso:
        return 0
    try:
        return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp())
    except ValueError:
        return 0


def _mapped(what: str, exc: BaseException) -> BlobstoreError:
    if isinstance(exc, BlobstoreError):
        return exc
    if isinstance(exc, PipeFailed):
        return BlobstoreError(f"NATS object store: {what}: {exc}")
    return BlobstoreError(f"NATS object store: {what}: {describe(exc)}")


# ---- reading ----------------------------------------------------------------------------------


class _PipeReader(ObjectReader):
    """The guest's side of a read: what `_pump` put in the pipe."""

    def __init__(self, pipe: BytePipe, size: int, what: str) -> None:
        self.size = size
        self._pipe = pipe
        self._what = what

    def read(self, n: int) -> bytes | None:
        try:
            return self._pipe.take(n)
        except PipeFailed as exc:
            raise _mapped(self._what, exc) from None

    def ready(self) -> bool:
        return self._pipe.has_data()

    def blocking_read(self, n: int) -> bytes | None:
        pipe = self._pipe
        while True:
            data = self.read(n)
            if data is None or data:
                return data
            store_state.state().wait(cond=pipe.cond, until=pipe.has_data)

    def close(self) -> None:
        self._pipe.cancel()


async def _wait_for_room(pipe: BytePipe, room: asyncio.Event) -> None:
    while not pipe.has_room():
        room.clear()
        if pipe.has_room():
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(room.wait(), 1.0)


async def _pump(js: JetStreamContext, bucket: str, info: NatsObjectInfo, pipe: BytePipe, lo: int, hi: int) -> None:
    """Feeds bytes [lo, hi) of the object's chunks into the pipe (on the bridge's loop).

    The chunks come from an ephemeral pull consumer, `FETCH_CHUNKS` at a time and only when the
    pipe has room, so what a read holds is the pipe plus one batch whatever the object's size (a
    push consumer would let the server send up to its flow-control window ahead)."""
    loop = asyncio.get_running_loop()
    room = asyncio.Event()

    def wake() -> None:
        loop.call_soon_threadsafe(room.set)

    pipe.on_room = wake
    whole = lo == 0 and hi == (info.size or 0)
    digest = hashlib.sha256() if whole else None
    if hi <= lo:
        pipe.finish()
        return
    stream = OBJ_STREAM_TEMPLATE.format(bucket=bucket)
    sub = await js.pull_subscribe(
        OBJ_CHUNKS_PRE_TEMPLATE.format(bucket=bucket, obj=info.nuid), durable=None, stream=stream,
        config=ConsumerConfig(ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.ALL, mem_storage=True,
                              inactive_threshold=CHUNK_WAIT_S * 6),
    )
    try:
        pos = 0
        done = False
        while not done and not pipe.cancelled:
            await _wait_for_room(pipe, room)
            for msg in await sub.fetch(batch=FETCH_CHUNKS, timeout=CHUNK_WAIT_S):
                data = msg.data
                end = pos + len(data)
                if digest is not None:
                    digest.update(data)
                if end > lo and pos < hi:
                    pipe.put(data if lo <= pos and end <= hi else data[max(0, lo - pos):hi - pos])
                pos = end
                if pos >= hi or msg.metadata.num_pending == 0:
                    done = True
                    break
        if digest is not None and not pipe.cancelled:
            expected = (info.digest or "").partition("=")[2]
            if base64.urlsafe_b64encode(digest.digest()).decode() != expected:
                pipe.finish(error=f"object '{info.name}': digest mismatch")
                return
        pipe.finish()
    except Exception as exc:  # the guest sees it on its next read
        pipe.finish(error=f"reading object '{info.name}': {describe(exc)}")
    finally:
        with contextlib.suppress(Exception):  # gone with the connection, or by inactivity
            consumer = await sub.consumer_info()
            await js.delete_consumer(stream, consumer.name)
        with contextlib.suppress(Exception):
            await sub.unsubscribe()


# ---- writing ----------------------------------------------------------------------------------


class _PipeSource:
    """What nats-py's put reads (in an executor thread): the guest's bytes, until the end."""

    def __init__(self, pipe: BytePipe) -> None:
        self._pipe = pipe

    def readinto(self, buffer: bytearray) -> int:
        pipe = self._pipe
        while True:
            data = pipe.take(len(buffer))  # PipeFailed when the guest aborted: the put purges
            if data is None:
                return 0
            if data:
                buffer[:len(data)] = data
                return len(data)
            with pipe.cond:
                if not pipe.has_data():
                    pipe.cond.wait(1.0)


class _PipeWriter(ObjectWriter):
    def __init__(self, bridge: NatsBridge, store: ObjectStore, name: str) -> None:
        self._bridge = bridge
        self._pipe = BytePipe()
        self._what = f"writing object '{name}'"
        # nats-py reads any object with `readinto` in its executor (its type says BufferedIOBase).
        source = cast(io.BufferedIOBase, _PipeSource(self._pipe))
        self._put: concurrent.futures.Future[Any] = bridge.submit(store.put(name, source))
        self._put.add_done_callback(self._wake)

    def _wake(self, _: object) -> None:
        with self._pipe.cond:
            self._pipe.cond.notify_all()

    def _failure(self) -> BlobstoreError | None:
        if not self._put.done():
            return None
        exc = self._put.exception() if not self._put.cancelled() else BlobstoreError(f"{self._what}: cancelled")
        return _mapped(self._what, exc) if exc is not None else BlobstoreError(f"{self._what}: ended early")

    def write(self, data: bytes) -> None:
        pipe = self._pipe
        while True:
            failure = self._failure()
            if failure is not None:
                raise failure
            if pipe.has_room():
                pipe.put(data)
                return
            store_state.state().wait(cond=pipe.cond, until=lambda: pipe.has_room() or self._put.done())

    def commit(self) -> None:
        self._pipe.finish()
        try:
            self._bridge.wait(self._put)
        except store_state.DeadlineExceeded:
            raise
        except Exception as exc:
            raise _mapped(self._what, exc) from None

    def abort(self) -> None:
        if not self._put.done():
            self._pipe.cancel()


# ---- the backend ------------------------------------------------------------------------------


class NatsBackend(Backend):
    kind = "nats"

    def __init__(self, bridge: NatsBridge) -> None:
        self.bridge = bridge

    def _call(self, what: str, op: Callable[[JetStreamContext], Coroutine[Any, Any, T]]) -> T:
        try:
            return self.bridge.call(op)
        except store_state.DeadlineExceeded:
            raise
        except (NatsError, BlobstoreError, OSError, TimeoutError, PipeFailed, ValueError) as exc:
            # (nats-py raises ValueError for names a stream or subject cannot hold)
            raise _mapped(what, exc) from None

    @staticmethod
    async def _store(js: JetStreamContext, container: str) -> ObjectStore:
        try:
            return await js.object_store(container)
        except NotFoundError:
            raise no_such_container(container) from None

    def create_container(self, name: str) -> None:
        async def op(js: JetStreamContext) -> None:
            try:
                await js.stream_info(OBJ_STREAM_TEMPLATE.format(bucket=name))
            except NotFoundError:
                await js.create_object_store(bucket=name)
                return
            raise container_exists(name)

        self._call(f"creating container '{name}'", op)

    def container_info(self, name: str) -> ContainerInfo:
        async def op(js: JetStreamContext) -> ContainerInfo:
            try:
                info = await js.stream_info(OBJ_STREAM_TEMPLATE.format(bucket=name))
            except NotFoundError:
                raise no_such_container(name) from None
            return ContainerInfo(name, int(info.created.timestamp()) if info.created else 0)

        return self._call(f"container '{name}'", op)

    def delete_container(self, name: str) -> None:
        async def op(js: JetStreamContext) -> None:
            with contextlib.suppress(NotFoundError):
                await js.delete_object_store(name)

        self._call(f"deleting container '{name}'", op)

    def container_exists(self, name: str) -> bool:
        async def op(js: JetStreamContext) -> bool:
            try:
                await js.stream_info(OBJ_STREAM_TEMPLATE.format(bucket=name))
            except NotFoundError:
                return False
            return True

        return self._call(f"container '{name}'", op)

    def list_objects(self, container: str) -> list[str]:
        async def op(js: JetStreamContext) -> list[str]:
            store = await self._store(js, container)
            try:
                infos = await store.list(ignore_deletes=True)
            except NotFoundError:
                return []  # nats-py's answer for an empty bucket
            return sorted({i.name for i in infos if not i.deleted})

        return self._call(f"listing container '{container}'", op)

    async def _info(self, js: JetStreamContext, container: str, name: str) -> NatsObjectInfo:
        store = await self._store(js, container)
        try:
            return await store.get_info(name)
        except ObjectNotFoundError:
            raise no_such_object(container, name) from None

    def object_info(self, container: str, name: str) -> ObjectInfo:
        async def op(js: JetStreamContext) -> ObjectInfo:
            info = await self._info(js, container, name)
            return ObjectInfo(name, container, _epoch(info.mtime), info.size or 0)

        return self._call(f"object '{name}'", op)

    def delete_object(self, container: str, name: str) -> None:
        async def op(js: JetStreamContext) -> None:
            store = await self._store(js, container)
            with contextlib.suppress(ObjectNotFoundError):
                await store.delete(name)

        self._call(f"deleting object '{name}'", op)

    def open_reader(self, container: str, name: str, start: int, end: int) -> ObjectReader:
        async def op(js: JetStreamContext) -> tuple[JetStreamContext, NatsObjectInfo]:
            info = await self._info(js, container, name)
            if info.options is not None and info.options.link is not None:
                raise BlobstoreError(f"object '{name}' is a link, which this host does not follow")
            return js, info

        js, info = self._call(f"reading object '{name}'", op)
        lo, hi = clamp_range(start, end, info.size or 0)
        pipe = BytePipe()
        self.bridge.submit(_pump(js, container, info, pipe, lo, hi))
        return _PipeReader(pipe, hi - lo, f"reading object '{name}'")

    def open_writer(self, container: str, name: str) -> ObjectWriter:
        store = self._call(f"writing object '{name}'", lambda js: self._store(js, container))
        return _PipeWriter(self.bridge, store, name)

    def close(self) -> None:
        self.bridge.close()
