"""The filesystem backend of wasi:keyvalue: a bucket is a directory, a key one file in it.

The directory is `config.root` itself for a named entry (it must exist: error::no-such-store
otherwise, as a named NATS bucket must), and `root/<encoded identifier>` on the unnamed path, created
on demand. A key never becomes a path as it is: its UTF-8 bytes are percent-encoded, everything but
ASCII letters, digits, '-' and '_' (so '/', '..', '.' and NUL cannot reach the filesystem), which
keeps keys inside the bucket and decodes back exactly for list-keys. A key whose encoded name is
longer than a file name may be (255 bytes) is error::other.

Writes go to a temporary file renamed over the key's file, so a reader sees the old value or the new
one, never half a file. set, delete and increment hold the bucket's lock (flock on `.lock`), which
makes increment's read-add-write atomic across threads and the host's worker processes: N concurrent
increments add N. Counters are 8-byte big-endian unsigned integers, as on every backend.
"""

from __future__ import annotations

import fcntl
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote, unquote

from wasmfleet.host.plugins.keyvalue_errors import KeyValueFailure
from wasmfleet.host.plugins.keyvalue_memory import counter_bytes, counter_value

PAGE = 1000
"""Keys per list-keys page."""

MAX_NAME_BYTES = 255
LOCK_NAME = ".lock"
_TMP_PREFIX = ".tmp-"


def encode_key(key: str) -> str:
    """The file name of a key: percent-encoded so that it is one plain name inside the bucket."""
    if not key:
        raise KeyValueFailure("other", "invalid key: empty")
    name = quote(key, safe="").replace(".", "%2E").replace("~", "%7E")
    if len(name) > MAX_NAME_BYTES:
        raise KeyValueFailure("other", f"invalid key: {len(name)} bytes encoded, at most {MAX_NAME_BYTES}")
    return name


def decode_key(name: str) -> str:
    return unquote(name, errors="strict")


def _failure(exc: OSError, what: str) -> KeyValueFailure:
    return KeyValueFailure("other", f"filesystem: {what}: {exc.strerror or exc}")


def open_bucket(directory: Path, *, create: bool) -> FileBucket:
    """The bucket in `directory`; created (with parents) when `create`, else it must exist."""
    if create:
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _failure(exc, f"cannot create {directory}") from None
    elif not directory.is_dir():
        raise KeyValueFailure("no-such-store", f"no directory {directory}")
    return FileBucket(directory)


class FileBucket:
    """One directory: the functions of wasi:keyvalue/store, atomics and batch."""

    def __init__(self, directory: Path) -> None:
        self._dir = directory

    def _path(self, key: str) -> Path:
        return self._dir / encode_key(key)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            fd = os.open(self._dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise _failure(exc, f"cannot lock {self._dir}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def _read(self, key: str) -> bytes | None:
        path = self._path(key)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise _failure(exc, f"cannot read key {key!r}") from None

    def _write(self, key: str, value: bytes) -> None:
        path = self._path(key)
        tmp = self._dir / f"{_TMP_PREFIX}{secrets.token_hex(8)}"
        try:
            with open(tmp, "wb") as out:
                out.write(value)
            os.replace(tmp, path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise _failure(exc, f"cannot write key {key!r}") from None

    def _remove(self, key: str) -> None:
        try:
            self._path(key).unlink(missing_ok=True)
        except OSError as exc:
            raise _failure(exc, f"cannot delete key {key!r}") from None

    def get(self, key: str) -> bytes | None:
        return self._read(key)

    def set(self, key: str, value: bytes) -> None:
        with self._locked():
            self._write(key, value)

    def delete(self, key: str) -> None:
        with self._locked():
            self._remove(key)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list_keys(self, cursor: int) -> tuple[list[str], int | None]:
        try:
            names = [e.name for e in os.scandir(self._dir) if not e.name.startswith(".") and e.is_file()]
        except OSError as exc:
            raise _failure(exc, f"cannot list {self._dir}") from None
        keys = sorted(decode_key(name) for name in names)
        following = cursor + PAGE
        return keys[cursor:following], (following if following < len(keys) else None)

    def increment(self, key: str, delta: int) -> int:
        with self._locked():
            value = (counter_value(self._read(key)) + delta) & ((1 << 64) - 1)
            self._write(key, counter_bytes(value))
            return value

    def get_many(self, keys: list[str]) -> list[tuple[str, bytes] | None]:
        found = [(k, self._read(k)) for k in keys]
        return [(k, v) if v is not None else None for k, v in found]

    def set_many(self, pairs: list[tuple[str, bytes]]) -> None:
        with self._locked():
            for key, value in pairs:
                self._write(key, value)

    def delete_many(self, keys: list[str]) -> None:
        with self._locked():
            for key in keys:
                self._remove(key)

    def close(self) -> None:
        """A guest dropped its handle; the files stay."""
