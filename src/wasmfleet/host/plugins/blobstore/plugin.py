"""The wasi:blobstore plugin: config, which entry serves a container, and the host functions.

Entries (hostInterfaces naming wasi:blobstore) and their backends, as upstream chooses them:

- the unnamed entry uses the host's default backend: NATS (JetStream Object Store) on the host's
  own NATS connection when the host has one, in-memory under `wasmfleet serve`; an explicit
  config.backend wins;
- a named entry uses config.backend: in-memory (the default), nats (config.url, default the
  host's NATS) or filesystem (config.root, required);
- config.buckets (comma-separated) limits the containers an entry serves (anything else:
  "unauthorized"), config.read_only=true refuses every write.

A container name picks its entry: the named entry of that name, else the unnamed entry (the
WIT has no other identifier to choose by). Connections are shared per host process: one NATS
connection per URL, opened on first use after the plugin's host start, closed at its stop.
Functions return error(string) for every failure, with the cause; only a request that runs out
of time traps (as any host call that waits does).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wasmfleet.host.plugin_api import store_state
from wasmfleet.host.plugin_api.host_plugins import ConfigKey, HostContext, HostPlugin, WorkloadContext
from wasmfleet.host.plugin_api.interfaces import OK, Interface, err, ok
from wasmfleet.host.plugins.blobstore import guest_values
from wasmfleet.host.plugins.blobstore.backends import Backend, BlobstoreError, no_such_container
from wasmfleet.host.plugins.blobstore.filesystem import FilesystemBackend
from wasmfleet.host.plugins.blobstore.guest_values import Container, IncomingValue, OutgoingValue, StreamObjectNames
from wasmfleet.host.plugins.blobstore.in_memory import InMemoryBackend
from wasmfleet.host.plugins.blobstore.nats_bridge import NatsBridge
from wasmfleet.host.plugins.blobstore.nats_objects import NatsBackend

PACKAGE = ("wasi", "blobstore")
BACKENDS = ("in-memory", "nats", "filesystem")
NATS_SCHEMES = ("nats://", "tls://", "ws://", "wss://")
WHOLE = (1 << 64) - 1
COPY_CHUNK = 1 << 20


class BadEntry(ValueError):
    """A hostInterfaces entry this host cannot serve (its message names the entry and the key)."""


@dataclass
class EntryRoute:
    """One hostInterfaces entry: its backend and what it allows."""

    label: str
    """How errors name it: "the unnamed wasi:blobstore entry" or "wasi:blobstore entry 'photos'"."""
    backend: Backend
    buckets: frozenset[str] | None = None
    read_only: bool = False

    def check(self, container: str, what: str, write: bool = False) -> None:
        if self.buckets is not None and container not in self.buckets:
            raise BlobstoreError(f"unauthorized: container '{container}' is not in config.buckets of {self.label}")
        if write and self.read_only:
            raise BlobstoreError(f"unauthorized: {what} refused, {self.label} is read-only")


@dataclass
class WorkloadRoutes:
    named: dict[str, EntryRoute] = field(default_factory=dict)
    default: EntryRoute | None = None

    def route(self, container: str) -> EntryRoute:
        found = self.named.get(container) or self.default
        if found is None:
            names = ", ".join(sorted(self.named)) or "none"
            raise BlobstoreError(f"no wasi:blobstore entry serves container '{container}' (no unnamed entry; "
                                 f"named entries: {names})")
        return found


def _guarded(fn: Callable[..., Any]) -> Callable[..., tuple[str, Any]]:
    """A host function whose BlobstoreError becomes the guest's error(string)."""

    def call(*args: Any) -> tuple[str, Any]:
        try:
            return ok(fn(*args))
        except BlobstoreError as exc:
            return err(str(exc))

    return call


class BlobstorePlugin(HostPlugin):
    """wasi:blobstore/{blobstore,container,types}@0.2.0-draft over in-memory, filesystem or NATS."""

    name = "wasi-blobstore"
    version = "0.2.0-draft"
    config_keys = (
        ConfigKey("backend", choices=BACKENDS, doc="where objects live (unnamed entry: the host's default)"),
        ConfigKey("url", doc="NATS servers for backend nats, comma-separated (default: the host's)"),
        ConfigKey("root", doc="the directory of backend filesystem (absolute)"),
        ConfigKey("buckets", doc="comma-separated containers this entry may use (default: any)"),
        ConfigKey("read_only", choices=("true", "false"), doc="refuse every write"),
    )

    def __init__(self) -> None:
        self._host = HostContext()
        self._lock = threading.Lock()
        self._nats: dict[str, NatsBackend] = {}
        self._workloads: dict[str, WorkloadRoutes] = {}

    # ---- config and lifecycle ------------------------------------------------------------------

    def config_problems(self, config: Mapping[str, str]) -> list[str]:
        problems = super().config_problems(config)
        backend = config.get("backend")
        root, url, buckets = config.get("root"), config.get("url"), config.get("buckets")
        if backend == "filesystem" and not root:
            problems.append("config.root: required with backend filesystem (the directory of the containers)")
        if root is not None:
            if backend != "filesystem":
                problems.append("config.root: only used by backend filesystem")
            elif not Path(root).is_absolute():
                problems.append(f"config.root: must be an absolute path, got {root!r}")
        if url is not None:
            if backend != "nats":
                problems.append("config.url: only used by backend nats")
            elif not url.strip() or any(not s.strip().startswith(NATS_SCHEMES) for s in url.split(",")):
                problems.append(f"config.url: expected nats://host:port[,...], got {url!r}")
        if buckets is not None and any(not b.strip() for b in buckets.split(",")):
            problems.append(f"config.buckets: an empty container name in {buckets!r}")
        return problems

    def start_host(self, host: HostContext) -> None:
        self._host = host

    def stop_host(self) -> None:
        with self._lock:
            backends, self._nats = list(self._nats.values()), {}
            self._workloads.clear()
        for backend in backends:
            backend.close()

    def start_workload(self, workload: WorkloadContext) -> None:
        routes = self._build(workload.names, workload.entries)
        with self._lock:
            self._workloads[workload.workload_id] = routes

    def stop_workload(self, workload_id: str) -> None:
        with self._lock:
            self._workloads.pop(workload_id, None)

    # ---- entries -> backends -------------------------------------------------------------------

    def _nats_backend(self, url: str) -> NatsBackend:
        with self._lock:
            backend = self._nats.get(url)
            if backend is None:
                backend = self._nats[url] = NatsBackend(NatsBridge(url, self._host.nats_connect_kwargs(url)))
            return backend

    def _backend(self, label: str, named: bool, config: Mapping[str, str]) -> Backend:
        kind = config.get("backend") or ("nats" if self._host.nats_url and not named else "in-memory")
        if kind == "filesystem":
            return FilesystemBackend(Path(config["root"]))
        if kind == "nats":
            url = config.get("url") or self._host.nats_url
            if not url:
                raise BadEntry(f"{label}: config.url: required with backend nats on a host without NATS")
            return self._nats_backend(url)
        return InMemoryBackend()

    def _build(self, names: Sequence[str | None], entries: Sequence[Mapping[str, str]]) -> WorkloadRoutes:
        routes = WorkloadRoutes()
        for name, config in zip(names, entries, strict=True):
            label = f"wasi:blobstore entry '{name}'" if name else "the unnamed wasi:blobstore entry"
            problems = self.config_problems(config)
            if problems:
                raise BadEntry(f"{label}: {'; '.join(problems)}")
            buckets = config.get("buckets")
            route = EntryRoute(
                label=label,
                backend=self._backend(label, name is not None, config),
                buckets=frozenset(b.strip() for b in buckets.split(",")) if buckets else None,
                read_only=config.get("read_only") == "true",
            )
            if name:
                routes.named[name] = route
            else:
                routes.default = route
        return routes

    def _routes(self) -> WorkloadRoutes:
        """The current guest's entries (built from its grants if its start was not seen here)."""
        state = store_state.state()
        with self._lock:
            routes = self._workloads.get(state.workload_id)
        if routes is not None:
            return routes
        grants = [g for g in state.grants if (g.namespace, g.package) == PACKAGE]
        try:
            routes = self._build([g.name for g in grants], [g.config for g in grants])
        except BadEntry as exc:
            raise BlobstoreError(str(exc)) from None
        with self._lock:
            return self._workloads.setdefault(state.workload_id, routes)

    # ---- wasi:blobstore/blobstore --------------------------------------------------------------

    def _open(self, name: str, create: bool) -> Container:
        route = self._routes().route(name)
        route.check(name, "create-container" if create else "get-container", write=create)
        if create:
            route.backend.create_container(name)
        else:
            route.backend.container_info(name)
        return Container(route, name)

    def _delete_container(self, name: str) -> None:
        route = self._routes().route(name)
        route.check(name, "delete-container", write=True)
        route.backend.delete_container(name)

    def _container_exists(self, name: str) -> bool:
        route = self._routes().route(name)
        route.check(name, "container-exists")
        return route.backend.container_exists(name)

    def _copy(self, src: tuple[str, str], dest: tuple[str, str], move: bool = False) -> None:
        what = "move-object" if move else "copy-object"
        routes = self._routes()
        source, target = routes.route(src[0]), routes.route(dest[0])
        source.check(src[0], what, write=move)
        target.check(dest[0], what, write=True)
        if source is target and src == dest:
            source.backend.object_info(*src)  # nothing to move, but it must exist
            return
        if not target.backend.container_exists(dest[0]):
            raise no_such_container(dest[0])
        reader = source.backend.open_reader(src[0], src[1], 0, WHOLE)
        try:
            writer = target.backend.open_writer(dest[0], dest[1])
            try:
                while (chunk := reader.blocking_read(COPY_CHUNK)) is not None:
                    writer.write(chunk)
                writer.commit()
            except BaseException:
                writer.abort()
                raise
        finally:
            reader.close()
        if move:
            source.backend.delete_object(*src)

    # ---- wasi:blobstore/container --------------------------------------------------------------

    @staticmethod
    def _info(c: Container) -> tuple[str, int]:
        info = c.route.backend.container_info(c.name)
        return (info.name, info.created_at)

    @staticmethod
    def _get_data(c: Container, name: str, start: int, end: int) -> IncomingValue:
        c.route.check(c.name, "get-data")
        return IncomingValue(c.route.backend.open_reader(c.name, name, start, end))

    @staticmethod
    def _write_data(c: Container, name: str, value: OutgoingValue) -> None:
        c.route.check(c.name, "write-data", write=True)
        if value.done or value.target is not None:
            raise BlobstoreError("this outgoing-value is already finished or written to an object")
        value.bind(c.route.backend.open_writer(c.name, name), f"'{c.name}/{name}'")

    @staticmethod
    def _list_objects(c: Container) -> StreamObjectNames:
        c.route.check(c.name, "list-objects")
        return StreamObjectNames(c.route.backend.list_objects(c.name))

    @staticmethod
    def _delete_objects(c: Container, names: list[str]) -> None:
        c.route.check(c.name, "delete-objects", write=True)
        if not c.route.backend.container_exists(c.name):
            raise no_such_container(c.name)
        for name in names:
            c.route.backend.delete_object(c.name, name)

    @staticmethod
    def _object_info(c: Container, name: str) -> tuple[str, str, int, int]:
        c.route.check(c.name, "object-info")
        info = c.route.backend.object_info(c.name, name)
        return (info.name, info.container, info.created_at, info.size)

    @staticmethod
    def _clear(c: Container) -> None:
        c.route.check(c.name, "clear", write=True)
        c.route.backend.clear(c.name)

    # ---- wasi:blobstore/types ------------------------------------------------------------------

    @staticmethod
    def _write_body(value: OutgoingValue) -> tuple[str, Any]:
        stream = value.body()
        return ok(stream) if stream is not None else err(None)

    @staticmethod
    def _finish(value: OutgoingValue) -> None:
        value.finish()

    def interfaces(self) -> tuple[Interface, ...]:
        g = _guarded
        blobstore = Interface("wasi:blobstore/blobstore", {
            "create-container": g(lambda name: self._open(name, create=True)),
            "get-container": g(lambda name: self._open(name, create=False)),
            "delete-container": g(self._delete_container),
            "container-exists": g(self._container_exists),
            "copy-object": g(self._copy),
            "move-object": g(lambda src, dest: self._copy(src, dest, move=True)),
        }, blocking=True)
        container = Interface("wasi:blobstore/container", {
            "[method]container.name": g(lambda c: c.name),
            "[method]container.info": g(self._info),
            "[method]container.get-data": g(self._get_data),
            "[method]container.write-data": g(self._write_data),
            "[method]container.list-objects": g(self._list_objects),
            "[method]container.delete-object": g(lambda c, name: self._delete_objects(c, [name])),
            "[method]container.delete-objects": g(self._delete_objects),
            "[method]container.has-object": g(
                lambda c, name: (c.route.check(c.name, "has-object"), c.route.backend.has_object(c.name, name))[1]
            ),
            "[method]container.object-info": g(self._object_info),
            "[method]container.clear": g(self._clear),
            "[method]stream-object-names.read-stream-object-names": g(lambda s, n: s.read(n)),
            "[method]stream-object-names.skip-stream-object-names": g(lambda s, n: s.skip(n)),
        }, ("container", "stream-object-names"), blocking=True)
        types = Interface("wasi:blobstore/types", {
            "[static]outgoing-value.new-outgoing-value": guest_values.OutgoingValue,
            "[method]outgoing-value.outgoing-value-write-body": self._write_body,
            "[static]outgoing-value.finish": g(self._finish),
            "[static]incoming-value.incoming-value-consume-sync": g(lambda v: v.consume_sync()),
            "[static]incoming-value.incoming-value-consume-async": g(lambda v: v.consume_async()),
            "[method]incoming-value.size": lambda v: v.size(),
        }, ("outgoing-value", "incoming-value"), blocking=True)
        return (blobstore, container, types)


__all__ = ["OK", "BadEntry", "BlobstorePlugin"]
