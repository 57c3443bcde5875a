"""The resources a guest holds: containers, outgoing and incoming values, their wasi:io streams,
and the stream of object names.

The streams are handed to the host's wasi:io implementation, which calls them through its stream
protocol: an input stream has `read(n)`/`blocking_read(n)`/`ready()` (bytes, b"" for nothing yet,
None at the end; `StreamFailed` for `last-operation-failed`), an output stream `closed`,
`check_write()`, `write(data)`, `flush()`, `ready()`. Dropping a handle calls `close()`.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING

from wasmfleet.host.plugin_api.stream_errors import StreamFailed
from wasmfleet.host.plugins.blobstore.backends import BlobstoreError, ObjectReader, ObjectWriter

if TYPE_CHECKING:
    from wasmfleet.host.plugins.blobstore.plugin import EntryRoute

WRITE_BUDGET = 1 << 20
"""Bytes the guest may write per check-write (the writer waits inside `write` when the backend is
behind, so the guest never polls a full stream)."""
SPOOL_IN_MEMORY = 1 << 20
"""Bytes written before write-data names the object stay in memory up to this, then go to a
temporary file (the object is not known yet, so they cannot stream to it)."""


@dataclass
class Container:
    """A container the guest opened (create-container / get-container) through one entry."""

    route: EntryRoute
    name: str


class StreamObjectNames:
    """A snapshot of a container's object names, read in pages (sorted)."""

    def __init__(self, names: list[str]) -> None:
        self._names = names
        self._pos = 0

    def read(self, n: int) -> tuple[list[str], bool]:
        """Up to n names, and whether none are left after them."""
        page = self._names[self._pos:self._pos + n]
        self._pos += len(page)
        return page, self._pos >= len(self._names)

    def skip(self, n: int) -> tuple[int, bool]:
        skipped = min(n, len(self._names) - self._pos)
        self._pos += skipped
        return skipped, self._pos >= len(self._names)


class OutgoingValue:
    """An object body the guest writes: its output stream, its destination (write-data) and
    `finish`, which commits it. Dropped without finish, nothing is stored."""

    def __init__(self) -> None:
        self._spool: IO[bytes] | None = None
        self._writer: ObjectWriter | None = None
        self.target: str | None = None
        self.failure: BlobstoreError | None = None
        self.stream_taken = False
        self.done = False

    def body(self) -> ValueOutputStream | None:
        """The output stream, the first time only (None after)."""
        if self.stream_taken:
            return None
        self.stream_taken = True
        return ValueOutputStream(self)

    def bind(self, writer: ObjectWriter, target: str) -> None:
        """write-data: from now on bytes go to `writer`; those written before go first."""
        if self._writer is not None or self.done:
            writer.abort()
            raise BlobstoreError(f"this outgoing-value is already written to {self.target}")
        self._writer = writer
        self.target = target
        spool, self._spool = self._spool, None
        if spool is not None:
            spool.seek(0)
            while chunk := spool.read(WRITE_BUDGET):
                self.write(chunk)
            spool.close()

    def write(self, data: bytes) -> None:
        if self.failure is not None or self.done:
            return
        if self._writer is None:
            if self._spool is None:
                self._spool = tempfile.SpooledTemporaryFile(SPOOL_IN_MEMORY)  # noqa: SIM115 (closed in bind/close)
            self._spool.write(data)
            return
        try:
            self._writer.write(data)
        except BlobstoreError as exc:
            self.failure = exc
            self._writer.abort()

    def finish(self) -> None:
        """Commits the object (finish); BlobstoreError with the cause when it cannot be."""
        if self.done:
            raise BlobstoreError("this outgoing-value is already finished")
        self.done = True
        if self.failure is not None:
            raise self.failure
        if self._writer is None:
            self.close()
            raise BlobstoreError("outgoing-value finished before write-data named its object")
        self._writer.commit()

    def close(self) -> None:
        """Dropped (or its store closed): whatever was written is thrown away."""
        self.done = True
        if self._spool is not None:
            self._spool.close()
            self._spool = None
        if self._writer is not None:
            self._writer.abort()


class ValueOutputStream:
    """The output-stream of an outgoing-value. After a backend failure it reports `closed`; the
    cause comes back from finish."""

    def __init__(self, value: OutgoingValue) -> None:
        self._value = value

    @property
    def closed(self) -> bool:
        return self._value.failure is not None or self._value.done

    def check_write(self) -> int:
        return WRITE_BUDGET

    def write(self, data: bytes) -> None:
        self._value.write(data)

    def flush(self) -> None:
        pass

    def ready(self) -> bool:
        return True


class IncomingValue:
    """The bytes of one get-data call; consumed once (sync into bytes, or as an input stream)."""

    def __init__(self, reader: ObjectReader) -> None:
        self.reader = reader
        self.consumed = False

    def size(self) -> int:
        return self.reader.size

    def consume_sync(self) -> bytes:
        self.consumed = True
        parts = []
        try:
            while (chunk := self.reader.blocking_read(WRITE_BUDGET)) is not None:
                parts.append(chunk)
        finally:
            self.reader.close()
        return b"".join(parts)

    def consume_async(self) -> ValueInputStream:
        self.consumed = True
        return ValueInputStream(self.reader)

    def close(self) -> None:
        if not self.consumed:
            self.reader.close()


class ValueInputStream:
    """The input-stream of an incoming-value: a backend failure is `last-operation-failed`."""

    def __init__(self, reader: ObjectReader) -> None:
        self._reader = reader

    def read(self, n: int) -> bytes | None:
        try:
            return self._reader.read(n)
        except BlobstoreError as exc:
            raise StreamFailed(str(exc)) from None

    def blocking_read(self, n: int) -> bytes | None:
        try:
            return self._reader.blocking_read(n)
        except BlobstoreError as exc:
            raise StreamFailed(str(exc)) from None

    def ready(self) -> bool:
        return self._reader.ready()

    def close(self) -> None:
        self._reader.close()
