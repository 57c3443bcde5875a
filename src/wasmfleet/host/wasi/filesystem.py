"""wasi:filesystem (types, preopens): preopened directories only, none by default.

Paths a guest passes are resolved under the descriptor's host directory and refused if they
escape it (.., absolute paths, symlinks pointing outside). Read-only preopens refuse writes.
Functions not listed here trap as "not implemented" (the linker's stub for a known interface).
"""

from __future__ import annotations

import os
import stat as statmod
from pathlib import Path
from typing import Any

from wasmfleet.host.plugin_api import store_state
from wasmfleet.host.plugin_api.interfaces import OK, Interface, err, ok
from wasmfleet.host.wasi.io import BytesInput, InputStream, OutputStream

_ERRNO = {
    2: "no-entry", 13: "access", 1: "not-permitted", 17: "exist", 20: "not-directory",
    21: "is-directory", 39: "not-empty", 22: "invalid", 36: "name-too-long", 28: "insufficient-space",
}


class Descriptor:
    def __init__(self, path: Path, root: Path, read_only: bool, is_dir: bool) -> None:
        self.path = path
        self.root = root
        self.read_only = read_only
        self.is_dir = is_dir

    def resolve(self, rel: str) -> Path:
        if rel.startswith("/"):
            raise PermissionError("absolute path")
        target = (self.path / rel).resolve()
        if target != self.root and self.root not in target.parents:
            raise PermissionError("path escapes the preopened directory")
        return target


def preopen(host_path: Path, read_only: bool) -> Descriptor:
    root = Path(host_path).resolve()
    return Descriptor(root, root, read_only, True)


def _error(exc: OSError) -> tuple[str, Any]:
    if isinstance(exc, PermissionError) and exc.errno is None:
        return err("not-permitted")
    return err(_ERRNO.get(exc.errno or 0, "io"))


def _type_of(mode: int) -> str:
    if statmod.S_ISDIR(mode):
        return "directory"
    if statmod.S_ISREG(mode):
        return "regular-file"
    if statmod.S_ISLNK(mode):
        return "symbolic-link"
    return "unknown"


def _stat_record(st: os.stat_result) -> tuple[Any, ...]:
    def ts(ns: int) -> tuple[int, int]:
        return (ns // 1_000_000_000, ns % 1_000_000_000)

    return (_type_of(st.st_mode), st.st_nlink, st.st_size, ts(st.st_atime_ns), ts(st.st_mtime_ns),
            ts(st.st_ctime_ns))


class FileOutput(OutputStream):
    def __init__(self, path: Path, offset: int | None) -> None:
        self.f = open(path, "r+b" if offset is not None else "ab")  # noqa: SIM115 - closed on drop
        if offset is not None:
            self.f.seek(offset)

    def write(self, data: bytes) -> None:
        self.f.write(data)

    def flush(self) -> None:
        self.f.flush()

    def close(self) -> None:
        self.f.close()


def _guard(fn: Any) -> Any:
    def wrapper(*args: Any) -> Any:
        try:
            return fn(*args)
        except OSError as exc:
            return _error(exc)

    return wrapper


@_guard
def _read_via_stream(d: Descriptor, offset: int) -> tuple[str, Any]:
    if d.is_dir:
        return err("is-directory")
    stream: InputStream = BytesInput(d.path.read_bytes()[offset:])
    return ok(stream)


@_guard
def _write_via_stream(d: Descriptor, offset: int) -> tuple[str, Any]:
    if d.read_only:
        return err("read-only")
    return ok(FileOutput(d.path, offset))


@_guard
def _append_via_stream(d: Descriptor) -> tuple[str, Any]:
    if d.read_only:
        return err("read-only")
    return ok(FileOutput(d.path, None))


@_guard
def _stat(d: Descriptor) -> tuple[str, Any]:
    return ok(_stat_record(d.path.stat()))


@_guard
def _stat_at(d: Descriptor, flags: frozenset[str], rel: str) -> tuple[str, Any]:
    p = d.resolve(rel)
    return ok(_stat_record(p.stat() if "symlink-follow" in flags else p.lstat()))


@_guard
def _open_at(
    d: Descriptor, path_flags: frozenset[str], rel: str, open_flags: frozenset[str], flags: frozenset[str]
) -> tuple[str, Any]:
    p = d.resolve(rel)
    writing = bool({"write", "mutate-directory"} & flags) or bool({"create", "truncate"} & open_flags)
    if writing and d.read_only:
        return err("read-only")
    if "create" in open_flags:
        if "exclusive" in open_flags and p.exists():
            return err("exist")
        if not p.exists():
            p.touch()
    if not p.exists():
        return err("no-entry")
    if "directory" in open_flags and not p.is_dir():
        return err("not-directory")
    if "truncate" in open_flags:
        p.write_bytes(b"")
    return ok(Descriptor(p, d.root, d.read_only, p.is_dir()))


class DirectoryEntries:
    def __init__(self, entries: list[tuple[str, str]]) -> None:
        self.entries = entries


@_guard
def _read_directory(d: Descriptor) -> tuple[str, Any]:
    if not d.is_dir:
        return err("not-directory")
    entries = []
    for child in sorted(d.path.iterdir()):
        entries.append((_type_of(child.lstat().st_mode), child.name))
    return ok(DirectoryEntries(entries))


def _read_directory_entry(s: DirectoryEntries) -> tuple[str, Any]:
    return ok(s.entries.pop(0) if s.entries else None)


@_guard
def _read(d: Descriptor, length: int, offset: int) -> tuple[str, Any]:
    with open(d.path, "rb") as f:
        f.seek(offset)
        data = f.read(length)
    return ok((data, len(data) < length))


@_guard
def _write(d: Descriptor, data: bytes, offset: int) -> tuple[str, Any]:
    if d.read_only:
        return err("read-only")
    with open(d.path, "r+b") as f:
        f.seek(offset)
        f.write(data)
    return ok(len(data))


@_guard
def _create_directory_at(d: Descriptor, rel: str) -> tuple[str, Any]:
    if d.read_only:
        return err("read-only")
    d.resolve(rel).mkdir()
    return OK


@_guard
def _unlink_file_at(d: Descriptor, rel: str) -> tuple[str, Any]:
    if d.read_only:
        return err("read-only")
    d.resolve(rel).unlink()
    return OK


@_guard
def _remove_directory_at(d: Descriptor, rel: str) -> tuple[str, Any]:
    if d.read_only:
        return err("read-only")
    d.resolve(rel).rmdir()
    return OK


@_guard
def _metadata_hash(d: Descriptor) -> tuple[str, Any]:
    st = d.path.stat()
    return ok((st.st_ino, st.st_dev))


@_guard
def _metadata_hash_at(d: Descriptor, flags: frozenset[str], rel: str) -> tuple[str, Any]:
    st = d.resolve(rel).stat()
    return ok((st.st_ino, st.st_dev))


def _get_flags(d: Descriptor) -> tuple[str, Any]:
    return ok(frozenset({"read"} if d.read_only else {"read", "write", "mutate-directory"}))


INTERFACES = {
    "wasi:filesystem/preopens": Interface(
        "wasi:filesystem/preopens", {"get-directories": lambda: list(store_state.state().preopens)}
    ),
    "wasi:filesystem/types": Interface(
        "wasi:filesystem/types",
        {
            "filesystem-error-code": lambda e: None,
            "[method]descriptor.read-via-stream": _read_via_stream,
            "[method]descriptor.write-via-stream": _write_via_stream,
            "[method]descriptor.append-via-stream": _append_via_stream,
            "[method]descriptor.get-type": _guard(
                lambda d: ok("directory" if d.is_dir else _type_of(d.path.stat().st_mode))
            ),
            "[method]descriptor.get-flags": _get_flags,
            "[method]descriptor.stat": _stat,
            "[method]descriptor.stat-at": _stat_at,
            "[method]descriptor.open-at": _open_at,
            "[method]descriptor.read-directory": _read_directory,
            "[method]descriptor.read": _read,
            "[method]descriptor.write": _write,
            "[method]descriptor.create-directory-at": _create_directory_at,
            "[method]descriptor.unlink-file-at": _unlink_file_at,
            "[method]descriptor.remove-directory-at": _remove_directory_at,
            "[method]descriptor.metadata-hash": _metadata_hash,
            "[method]descriptor.metadata-hash-at": _metadata_hash_at,
            "[method]descriptor.sync": lambda d: OK,
            "[method]descriptor.sync-data": lambda d: OK,
            "[method]descriptor.is-same-object": lambda a, b: a.path == b.path,
            "[method]directory-entry-stream.read-directory-entry": _read_directory_entry,
        },
    ),
}
