"""The in-memory backend: containers and objects in this process, per workload entry.

The default of the unnamed entry under `wasmfleet serve`, and of a named entry without
config.backend. Objects are kept as the list of chunks the guest wrote (no copy into one buffer);
they live until the workload stops here, and each worker process has its own.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from wasmfleet.host.plugins.blobstore.backends import (
    Backend,
    ContainerInfo,
    ObjectInfo,
    ObjectReader,
    ObjectWriter,
    clamp_range,
    container_exists,
    no_such_container,
    no_such_object,
    now_s,
)


@dataclass(frozen=True)
class _Object:
    chunks: tuple[bytes, ...]
    size: int
    created_at: int


@dataclass
class _Container:
    created_at: int
    objects: dict[str, _Object] = field(default_factory=dict)


class _ChunksReader(ObjectReader):
    def __init__(self, obj: _Object, lo: int, hi: int) -> None:
        self.size = hi - lo
        self._chunks = obj.chunks
        self._index = 0
        self._skip = lo  # bytes still to skip before the range starts
        self._left = hi - lo

    def read(self, n: int) -> bytes | None:
        while self._left > 0 and self._index < len(self._chunks):
            chunk = self._chunks[self._index]
            if self._skip >= len(chunk):
                self._skip -= len(chunk)
                self._index += 1
                continue
            take = min(n, self._left, len(chunk) - self._skip)
            data = chunk[self._skip:self._skip + take]
            self._skip += take
            self._left -= take
            if self._skip >= len(chunk):
                self._skip = 0
                self._index += 1
            return data
        return None


class _ChunksWriter(ObjectWriter):
    def __init__(self, backend: InMemoryBackend, container: str, name: str) -> None:
        self._backend = backend
        self._container = container
        self._name = name
        self._chunks: list[bytes] = []
        self._size = 0

    def write(self, data: bytes) -> None:
        self._chunks.append(bytes(data))
        self._size += len(data)

    def commit(self) -> None:
        self._backend._store(self._container, self._name, _Object(tuple(self._chunks), self._size, now_s()))
        self._chunks = []

    def abort(self) -> None:
        self._chunks = []


class InMemoryBackend(Backend):
    kind = "in-memory"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._containers: dict[str, _Container] = {}

    def _get(self, name: str) -> _Container:
        found = self._containers.get(name)
        if found is None:
            raise no_such_container(name)
        return found

    def _store(self, container: str, name: str, obj: _Object) -> None:
        with self._lock:
            self._get(container).objects[name] = obj

    def create_container(self, name: str) -> None:
        with self._lock:
            if name in self._containers:
                raise container_exists(name)
            self._containers[name] = _Container(now_s())

    def container_info(self, name: str) -> ContainerInfo:
        with self._lock:
            return ContainerInfo(name, self._get(name).created_at)

    def delete_container(self, name: str) -> None:
        with self._lock:
            self._containers.pop(name, None)

    def container_exists(self, name: str) -> bool:
        with self._lock:
            return name in self._containers

    def list_objects(self, container: str) -> list[str]:
        with self._lock:
            return sorted(self._get(container).objects)

    def object_info(self, container: str, name: str) -> ObjectInfo:
        with self._lock:
            obj = self._get(container).objects.get(name)
        if obj is None:
            raise no_such_object(container, name)
        return ObjectInfo(name, container, obj.created_at, obj.size)

    def delete_object(self, container: str, name: str) -> None:
        with self._lock:
            self._get(container).objects.pop(name, None)

    def clear(self, container: str) -> None:
        with self._lock:
            self._get(container).objects.clear()

    def open_reader(self, container: str, name: str, start: int, end: int) -> ObjectReader:
        with self._lock:
            obj = self._get(container).objects.get(name)
        if obj is None:
            raise no_such_object(container, name)
        lo, hi = clamp_range(start, end, obj.size)
        return _ChunksReader(obj, lo, hi)

    def open_writer(self, container: str, name: str) -> ObjectWriter:
        with self._lock:
            self._get(container)
        return _ChunksWriter(self, container, name)
