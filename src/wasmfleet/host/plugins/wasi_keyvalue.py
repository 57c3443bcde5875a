"""wasi:keyvalue/{store,atomics,batch}@0.2.0-draft, with in-memory, NATS JetStream KV, Redis and
filesystem backends.

Which backend `open(identifier)` uses (upstream's rules):
- a hostInterfaces entry whose `name` equals the identifier: its `config.backend`, `in-memory`
  (default), `nats` (`config.url`, default the host's data-plane NATS; `config.bucket`, default the
  identifier), `redis` (`config.url` required, `config.prefix`) or `filesystem` (`config.root`
  required). On this named path a NATS bucket or the root directory must already exist
  (error::no-such-store otherwise);
- otherwise the unnamed entry: the host's default backend, NATS on the host's own connection when
  the host has one (a `wasmfleet host`), in-memory when not (`wasmfleet serve`); `config.backend`
  overrides it. The bucket is the identifier, created on demand (NATS bucket, `root/<identifier>`,
  Redis prefix `<prefix><identifier>:`);
- no entry matches: error::access-denied.

A guest whose entries all keep their data in NATS or in memory is suspended while a NATS operation
runs, on its serving loop (`suspends_with`, runtime.suspension); with Redis or a filesystem entry
it runs on a wasm thread and the operations block it there.

In-memory buckets belong to the workload (per host process: `--workers` processes each hold their
own) and disappear when it stops. Failures of the store come back as error::other with the cause.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from nats.js.kv import KeyValue

from wasmfleet.host.plugin_api import store_state
from wasmfleet.host.plugin_api.host_plugins import ConfigKey, HostContext, HostPlugin, WorkloadContext
from wasmfleet.host.plugin_api.interfaces import Interface, Later, err, ok
from wasmfleet.host.plugins import keyvalue_filesystem
from wasmfleet.host.plugins.keyvalue_errors import KeyValueFailure
from wasmfleet.host.plugins.keyvalue_memory import MemoryBuckets
from wasmfleet.host.plugins.keyvalue_nats import Answer, NatsBucket, NatsConnections, Pending, deadline, then
from wasmfleet.host.plugins.keyvalue_redis import RedisBucket, RedisPools

BACKENDS = ("in-memory", "nats", "redis", "filesystem")
REQUIRED = {"redis": "url", "filesystem": "root"}
"""The key each backend cannot do without (checked at workload start)."""
ALLOWED = {
    "in-memory": {"backend"},
    "nats": {"backend", "url", "bucket"},
    "redis": {"backend", "url", "prefix"},
    "filesystem": {"backend", "root"},
}


class Bucket(Protocol):
    """A bucket's operations; NATS buckets of a suspended guest answer with a Pending (`Answer`)."""

    def get(self, key: str) -> Answer[bytes | None]: ...
    def set(self, key: str, value: bytes) -> Answer[None]: ...
    def delete(self, key: str) -> Answer[None]: ...
    def exists(self, key: str) -> Answer[bool]: ...
    def list_keys(self, cursor: int) -> Answer[tuple[list[str], int | None]]: ...
    def increment(self, key: str, delta: int) -> Answer[int]: ...
    def get_many(self, keys: list[str]) -> Answer[list[tuple[str, bytes] | None]]: ...
    def set_many(self, pairs: list[tuple[str, bytes]]) -> Answer[None]: ...
    def delete_many(self, keys: list[str]) -> Answer[None]: ...
    def close(self) -> None: ...


def _error(exc: KeyValueFailure) -> tuple[str, Any]:
    """The WIT `error` variant of a failure."""
    return err((exc.case, str(exc)) if exc.case == "other" else (exc.case, None))


def _call(fn: Callable[..., Any]) -> Callable[..., tuple[str, Any] | Later]:
    """Wraps a bucket operation: its value as ok, a KeyValueFailure as the WIT error; a Pending
    (a suspended guest's NATS operation) as a Later of the same."""

    def call(*args: Any) -> tuple[str, Any] | Later:
        try:
            value = fn(*args)
        except KeyValueFailure as exc:
            return _error(exc)
        return _later(value) if isinstance(value, Pending) else ok(value)

    return call


def _later(pending: Pending[Any]) -> Later:
    def answer(future: asyncio.Future[Any]) -> tuple[str, Any] | Later:
        try:
            value = pending.then(future)
        except KeyValueFailure as exc:
            return _error(exc)
        return _later(value) if isinstance(value, Pending) else ok(value)

    return Later(pending.future, answer)


def _may_wait(configs: Sequence[Mapping[str, str]]) -> bool:
    """A call may wait on NATS, Redis or a disk unless every entry the component has keeps its data
    in memory (an entry without `backend` gets the host's default, unknown when this is asked): such
    a guest never runs inline on the worker's event loop (which would stall every other request
    there); it is suspended there instead when `_may_suspend` holds, else it runs on a wasm thread."""
    return not configs or any(config.get("backend") != "in-memory" for config in configs)


def _may_suspend(configs: Sequence[Mapping[str, str]]) -> bool:
    """Whether every entry keeps its data in NATS or in memory (an entry without `backend`: the
    host's default, one of those two): a guest can then be suspended instead of blocked."""
    return all(config.get("backend", "nats") in ("nats", "in-memory") for config in configs)


class KeyValuePlugin(HostPlugin):
    name = "wasi-keyvalue"
    version = "0.2.0-draft"
    config_keys = (
        ConfigKey("backend", choices=BACKENDS, doc="in-memory, nats, redis or filesystem"),
        ConfigKey("url", doc="NATS servers (nats: default the host's data plane) or Redis URL (redis: required)"),
        ConfigKey("bucket", doc="JetStream KV bucket of a named nats entry (default: its name)"),
        ConfigKey("prefix", doc="prefix of every Redis key (redis)"),
        ConfigKey("root", doc="directory holding the buckets (filesystem: required)"),
    )

    def __init__(self) -> None:
        self._host = HostContext()
        self._nats: NatsConnections | None = None
        self._nats_of_loop: dict[asyncio.AbstractEventLoop, NatsConnections] = {}
        """Connections of the serving loops whose guests run suspended."""
        self._redis = RedisPools()
        self._lock = threading.Lock()
        self._memory: dict[str, MemoryBuckets] = {}

    def config_problems(self, config: Mapping[str, str]) -> list[str]:
        problems = super().config_problems(config)
        backend = config.get("backend")
        if backend in REQUIRED and not config.get(REQUIRED[backend]):
            key = REQUIRED[backend]
            problems.append(f"config.{key}: required by backend {backend}")
        if backend in ALLOWED:
            problems += [f"config.{name}: not a key of backend {backend} (accepted: "
                         f"{', '.join(sorted(ALLOWED[backend]))})"
                         for name in config if name not in ALLOWED[backend] and any(
                             k.name == name for k in self.config_keys)]
        return problems

    # ---- lifecycle ----------------------------------------------------------------------------

    def start_host(self, host: HostContext) -> None:
        self._host = host

    def stop_host(self) -> None:
        with self._lock:
            connections, self._nats = self._nats, None
            of_loops = list(self._nats_of_loop.values())
            self._nats_of_loop.clear()
        for each in [connections, *of_loops]:
            if each is not None:
                each.close()
        self._redis.close()

    def start_workload(self, workload: WorkloadContext) -> None:
        self._workload_memory(workload.workload_id)

    def stop_workload(self, workload_id: str) -> None:
        with self._lock:
            self._memory.pop(workload_id, None)

    def _workload_memory(self, workload_id: str) -> MemoryBuckets:
        with self._lock:
            return self._memory.setdefault(workload_id, MemoryBuckets())

    def _connections(self, loop: asyncio.AbstractEventLoop | None = None) -> NatsConnections:
        """The host process's connections, or those of the serving `loop` a suspended guest runs on."""
        with self._lock:
            if loop is not None:
                connections = self._nats_of_loop.get(loop)
                if connections is None:
                    connections = self._nats_of_loop[loop] = NatsConnections(self._host, loop)
                return connections
            if self._nats is None:
                self._nats = NatsConnections(self._host)
            return self._nats

    # ---- store.open ---------------------------------------------------------------------------

    def _open(self, identifier: str) -> Answer[Bucket]:
        state = store_state.state()
        entries = [g for g in state.grants if (g.namespace, g.package) == ("wasi", "keyvalue")]
        named = next((g for g in entries if g.name == identifier), None)
        if named is not None:
            return self._bucket(named.config.get("backend", "in-memory"), named.config, identifier,
                                state.workload_id, create=False)
        unnamed = next((g for g in entries if not g.name), None)
        if unnamed is None:
            raise KeyValueFailure("access-denied")
        config = unnamed.config
        if "backend" not in config:
            config = {**self._host_default(), **config}
        return self._bucket(config.get("backend", "in-memory"), config, identifier,
                            state.workload_id, create=True)

    def _host_default(self) -> Mapping[str, str]:
        """The unnamed path's backend when its entry sets none: NATS on the host's data plane when
        there is one (`wasmfleet host`), in-memory when not (`wasmfleet serve` without flags)."""
        return {"backend": "nats"} if self._host.nats_url else {"backend": "in-memory"}

    def _bucket(self, backend: str, config: Mapping[str, str], name: str, workload_id: str,
                create: bool) -> Answer[Bucket]:
        if backend == "nats":
            url = config.get("url") or self._host.nats_url
            if not url:
                raise KeyValueFailure("other", "backend nats needs config.url on a host without NATS")
            bucket = name if create else config.get("bucket") or name
            connections = self._connections(store_state.state().loop)
            known = connections.known(url, bucket)
            if known is not None:
                return NatsBucket(connections, known, url)
            # Opening is idempotent (a lookup; a creation that finds the bucket made meanwhile uses it).
            def opening() -> Coroutine[Any, Any, KeyValue]:
                return connections.open(url, bucket, create)

            def bucket_of(kv: KeyValue) -> Bucket:
                return NatsBucket(connections, kv, url)

            if connections.on_loop:
                return then(connections.started(connections.attempt(opening, deadline(), url, idempotent=True)),
                            bucket_of)
            return NatsBucket(connections, connections.run(opening, deadline(), url, idempotent=True), url)
        if backend == "redis":
            url = config.get("url", "")
            prefix = config.get("prefix", "") + ("" if not create else f"{name}:")
            return RedisBucket(self._redis.client(url), prefix)
        if backend == "filesystem":
            root = Path(config.get("root", ""))
            if create:
                return keyvalue_filesystem.open_bucket(root / keyvalue_filesystem.encode_key(name), create=True)
            return keyvalue_filesystem.open_bucket(root, create=False)
        if backend != "in-memory":  # refused at workload start
            raise KeyValueFailure("other", f"unknown backend {backend!r}")
        return self._workload_memory(workload_id).bucket(name)

    # ---- interfaces ---------------------------------------------------------------------------

    def interfaces(self) -> tuple[Interface, ...]:
        def list_keys(bucket: Bucket, cursor: int | None) -> Answer[tuple[list[str], int | None]]:
            return bucket.list_keys(cursor or 0)

        return (
            Interface(
                "wasi:keyvalue/store",
                {
                    "open": _call(self._open),
                    "[method]bucket.get": _call(lambda b, k: b.get(k)),
                    "[method]bucket.set": _call(lambda b, k, v: b.set(k, bytes(v))),
                    "[method]bucket.delete": _call(lambda b, k: b.delete(k)),
                    "[method]bucket.exists": _call(lambda b, k: b.exists(k)),
                    "[method]bucket.list-keys": _call(list_keys),
                },
                ("bucket",),
                blocking_with=_may_wait,
                suspends_with=_may_suspend,
            ),
            Interface("wasi:keyvalue/atomics", {"increment": _call(lambda b, k, d: b.increment(k, d))},
                      blocking_with=_may_wait, suspends_with=_may_suspend),
            Interface(
                "wasi:keyvalue/batch",
                {
                    "get-many": _call(lambda b, keys: b.get_many(list(keys))),
                    "set-many": _call(lambda b, pairs: b.set_many([(k, bytes(v)) for k, v in pairs])),
                    "delete-many": _call(lambda b, keys: b.delete_many(list(keys))),
                },
                blocking_with=_may_wait,
                suspends_with=_may_suspend,
            ),
        )
