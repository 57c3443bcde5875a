"""What a blobstore backend implements, and the error every blobstore function returns.

Backends are synchronous: host functions run on the thread that runs the guest. Object bodies
never cross as one buffer: `open_reader` returns an `ObjectReader` the guest's input-stream reads
from, `open_writer` an `ObjectWriter` its output-stream writes into, so memory stays bounded
whatever the object's size (the in-memory backend, which keeps objects in memory by definition,
aside).
"""

from __future__ import annotations

import abc
import time
from dataclasses import dataclass


class BlobstoreError(Exception):
    """A blobstore function failed: the message is the guest's `error` string (with the cause)."""


def no_such_container(name: str) -> BlobstoreError:
    return BlobstoreError(f"container '{name}' does not exist")


def container_exists(name: str) -> BlobstoreError:
    return BlobstoreError(f"container '{name}' already exists")


def no_such_object(container: str, name: str) -> BlobstoreError:
    return BlobstoreError(f"object '{name}' does not exist in container '{container}'")


@dataclass(frozen=True)
class ContainerInfo:
    name: str
    created_at: int
    """Seconds since the Unix epoch (0 when the backend does not know)."""


@dataclass(frozen=True)
class ObjectInfo:
    name: str
    container: str
    created_at: int
    """Seconds since the Unix epoch (0 when the backend does not know)."""
    size: int


def now_s() -> int:
    return int(time.time())


def clamp_range(start: int, end: int, size: int) -> tuple[int, int]:
    """get-data's [start, end] (both inclusive) clipped to an object of `size` bytes, as a
    half-open [lo, hi) (empty when start is past the end or after `end`)."""
    lo = min(start, size)
    return lo, max(lo, min(end + 1, size))


class ObjectReader(abc.ABC):
    """The bytes of one get-data range, read once from the start."""

    size: int
    """Bytes this reader yields in all (the clipped range)."""

    @abc.abstractmethod
    def read(self, n: int) -> bytes | None:
        """Up to n bytes; b"" when none are available yet; None at the end. Raises BlobstoreError."""

    def ready(self) -> bool:
        """Whether `read` would return something (bytes or the end) without waiting."""
        return True

    def blocking_read(self, n: int) -> bytes | None:
        """Like `read`, waiting (at most until the request's deadline) while nothing is available."""
        return self.read(n)

    def close(self) -> None:  # noqa: B027 (an optional hook)
        """The guest is done (possibly before the end): release what the reader holds."""


class ObjectWriter(abc.ABC):
    """The body of one object being written; nothing is visible until `commit`."""

    @abc.abstractmethod
    def write(self, data: bytes) -> None:
        """Appends bytes, waiting while the backend catches up. Raises BlobstoreError."""

    @abc.abstractmethod
    def commit(self) -> None:
        """Makes the object visible (replacing one of the same name). Raises BlobstoreError."""

    @abc.abstractmethod
    def abort(self) -> None:
        """Drops what was written; the object (if any) is left as it was. Safe twice."""


class Backend(abc.ABC):
    """One store of containers of objects (in memory, a directory tree, a NATS server...)."""

    kind: str = ""
    """The config.backend value naming it."""

    @abc.abstractmethod
    def create_container(self, name: str) -> None:
        """Raises BlobstoreError when it exists already."""

    @abc.abstractmethod
    def container_info(self, name: str) -> ContainerInfo:
        """Raises BlobstoreError when it does not exist (get-container)."""

    @abc.abstractmethod
    def delete_container(self, name: str) -> None:
        """Deletes the container and its objects; an absent container is not an error."""

    @abc.abstractmethod
    def container_exists(self, name: str) -> bool: ...

    @abc.abstractmethod
    def list_objects(self, container: str) -> list[str]:
        """The names of the container's objects, sorted."""

    @abc.abstractmethod
    def object_info(self, container: str, name: str) -> ObjectInfo:
        """Raises BlobstoreError when the object does not exist."""

    def has_object(self, container: str, name: str) -> bool:
        if not self.container_exists(container):
            raise no_such_container(container)
        try:
            self.object_info(container, name)
        except BlobstoreError:
            return False
        return True

    @abc.abstractmethod
    def delete_object(self, container: str, name: str) -> None:
        """An absent object is not an error."""

    def clear(self, container: str) -> None:
        for name in self.list_objects(container):
            self.delete_object(container, name)

    @abc.abstractmethod
    def open_reader(self, container: str, name: str, start: int, end: int) -> ObjectReader:
        """A reader of bytes [start, end] (inclusive, clipped). Raises BlobstoreError when absent."""

    @abc.abstractmethod
    def open_writer(self, container: str, name: str) -> ObjectWriter:
        """A writer of a new body for `name`. Raises BlobstoreError when the container is absent."""

    def close(self) -> None:  # noqa: B027 (an optional hook)
        """Releases connections (host stop). Default: nothing."""
