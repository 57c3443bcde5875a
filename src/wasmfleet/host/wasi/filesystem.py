"""wasi:filesystem (types, preopens): every function, preopened directories only, none by default.

Each descriptor holds a real file descriptor, and every guest path is resolved from it one
component at a time, openat-style: intermediate directories are opened with O_NOFOLLOW, `..` pops
back to an already-opened parent, and symbolic links are read and expanded here, never by the
kernel. So no path, `..` or symlink (including one the guest created with symlink-at) can lead
outside the descriptor it started from: a path that tries gets `not-permitted`, an absolute path
or symlink target too. A descriptor is a capability like in wasmtime (cap-std): `..` from a
directory opened with open-at cannot climb above it either.

Read-only preopens (and everything opened under them) refuse every change with `read-only`.
Timestamps are (seconds, nanoseconds) records; errors map errno to `error-code` (`_ERRNO`).
"""

from __future__ import annotations

import errno
import os
import stat as statmod
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from wasmfleet.host.plugin_api import store_state
from wasmfleet.host.plugin_api.interfaces import OK, Interface, err, ok
from wasmfleet.host.wasi.io import InputStream, OutputStream, StreamFailed

_ERRNO = {
    errno.EACCES: "access", errno.EAGAIN: "would-block", errno.EALREADY: "already",
    errno.EBADF: "bad-descriptor", errno.EBUSY: "busy", errno.EDEADLK: "deadlock",
    errno.EDQUOT: "quota", errno.EEXIST: "exist", errno.EFBIG: "file-too-large",
    errno.EILSEQ: "illegal-byte-sequence", errno.EINPROGRESS: "in-progress",
    errno.EINTR: "interrupted", errno.EINVAL: "invalid", errno.EIO: "io",
    errno.EISDIR: "is-directory", errno.ELOOP: "loop", errno.EMLINK: "too-many-links",
    errno.EMSGSIZE: "message-size", errno.ENAMETOOLONG: "name-too-long", errno.ENODEV: "no-device",
    errno.ENOENT: "no-entry", errno.ENOLCK: "no-lock", errno.ENOMEM: "insufficient-memory",
    errno.ENOSPC: "insufficient-space", errno.ENOTDIR: "not-directory", errno.ENOTEMPTY: "not-empty",
    errno.ENOTRECOVERABLE: "not-recoverable", errno.ENOTSUP: "unsupported", errno.ENOTTY: "no-tty",
    errno.ENXIO: "no-such-device", errno.EOVERFLOW: "overflow", errno.EPERM: "not-permitted",
    errno.EPIPE: "pipe", errno.EROFS: "read-only", errno.ESPIPE: "invalid-seek",
    errno.ETXTBSY: "text-file-busy", errno.EXDEV: "cross-device",
}

_MAX_SYMLINKS = 40
"""Symbolic links expanded while resolving one path before giving up with `loop` (Linux's limit)."""

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_WALK_FLAGS = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
"""Intermediate directories: search-only (no read permission needed), never through a symlink."""

_ADVICE = {
    "normal": os.POSIX_FADV_NORMAL, "sequential": os.POSIX_FADV_SEQUENTIAL,
    "random": os.POSIX_FADV_RANDOM, "will-need": os.POSIX_FADV_WILLNEED,
    "dont-need": os.POSIX_FADV_DONTNEED, "no-reuse": os.POSIX_FADV_NOREUSE,
}


class Refused(Exception):
    """A request this module refuses itself (not an OS error): carries the WASI error-code."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


class Descriptor:
    """A directory or file the guest holds: a host file descriptor plus what it may do with it.

    Directories open their descriptor lazily (a preopen whose directory is missing fails when the
    guest uses it, not when the component loads). `close` is called when the guest drops it.
    """

    def __init__(self, path: Path, read_only: bool, is_dir: bool, fd: int | None = None,
                 flags: frozenset[str] = frozenset()) -> None:
        self.path = path
        """The host path it was opened as (for messages; operations use the descriptor)."""
        self.read_only = read_only
        self.is_dir = is_dir
        self.flags = flags
        self._fd = fd

    @property
    def fd(self) -> int:
        if self._fd is None:
            self._fd = os.open(self.path, _DIR_FLAGS)
        return self._fd

    def fresh(self) -> Descriptor:
        """A new descriptor of the same directory (each get-directories call hands out its own,
        which the guest may drop without closing anyone else's)."""
        return Descriptor(self.path, self.read_only, self.is_dir, None, self.flags)

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def __del__(self) -> None:
        with suppress(OSError):
            self.close()


def preopen(host_path: Path, read_only: bool) -> Descriptor:
    """The template of a preopened directory (see `Descriptor.fresh`)."""
    flags = {"read"} if read_only else {"read", "mutate-directory"}
    return Descriptor(Path(host_path).resolve(), read_only, True, None, frozenset(flags))


@contextmanager
def _at(d: Descriptor, rel: str, follow: bool) -> Iterator[tuple[int, str]]:
    """Resolves `rel` under directory `d` to (parent directory fd, final name) for *at calls.

    With `follow`, a final symlink is expanded too (then the name is never a symlink unless it
    changed since, and callers still pass follow_symlinks=False / O_NOFOLLOW).
    """
    if not d.is_dir:
        raise Refused("not-directory")
    if rel == "":
        raise Refused("no-entry")
    if rel.startswith("/"):
        raise Refused("not-permitted")
    follow = follow or rel.endswith("/")
    stack = [d.fd]
    try:
        yield _walk(stack, deque(c for c in rel.split("/") if c not in ("", ".")), follow)
    finally:
        for fd in stack[1:]:
            os.close(fd)


def _walk(stack: list[int], pending: deque[str], follow: bool) -> tuple[int, str]:
    links = 0
    while pending:
        part = pending.popleft()
        last = not pending
        top = stack[-1]
        if part == "..":
            if len(stack) == 1:
                raise Refused("not-permitted")
            os.close(stack.pop())
            continue
        if last and not follow:
            return top, part
        try:
            st = os.stat(part, dir_fd=top, follow_symlinks=False)
        except FileNotFoundError:
            if last:
                return top, part
            raise
        if statmod.S_ISLNK(st.st_mode):
            links += 1
            if links > _MAX_SYMLINKS:
                raise OSError(errno.ELOOP, "too many symbolic links")
            target = os.readlink(part, dir_fd=top)
            if target.startswith("/"):
                raise Refused("not-permitted")
            pending.extendleft(reversed([c for c in target.split("/") if c not in ("", ".")]))
            continue
        if last:
            return top, part
        stack.append(os.open(part, _WALK_FLAGS, dir_fd=top))
    return stack[-1], "."


def _guard(fn: Callable[..., tuple[str, Any]]) -> Callable[..., tuple[str, Any]]:
    """Maps OS errors and refusals to `result::err(error-code)`."""

    def wrapper(*args: Any) -> tuple[str, Any]:
        try:
            return fn(*args)
        except Refused as exc:
            return err(exc.code)
        except OSError as exc:
            return err(_ERRNO.get(exc.errno or 0, "io"))

    wrapper.__name__ = fn.__name__
    return wrapper


def _writable(d: Descriptor) -> None:
    if d.read_only:
        raise Refused("read-only")


def _file_access(d: Descriptor, access: str) -> None:
    """A file opened without `access` (read or write) refuses it, as a descriptor without that
    right does in wasmtime: bad-descriptor (never a trap from the OS's EBADF)."""
    if d.is_dir:
        raise Refused("is-directory")
    if access not in d.flags:
        raise Refused("bad-descriptor")


def _type_of(mode: int) -> str:
    if statmod.S_ISDIR(mode):
        return "directory"
    if statmod.S_ISREG(mode):
        return "regular-file"
    if statmod.S_ISLNK(mode):
        return "symbolic-link"
    if statmod.S_ISCHR(mode):
        return "character-device"
    if statmod.S_ISBLK(mode):
        return "block-device"
    if statmod.S_ISFIFO(mode):
        return "fifo"
    if statmod.S_ISSOCK(mode):
        return "socket"
    return "unknown"


def _ts(ns: int) -> tuple[int, int]:
    return (ns // 1_000_000_000, ns % 1_000_000_000)


def _stat_record(st: os.stat_result) -> tuple[Any, ...]:
    return (_type_of(st.st_mode), st.st_nlink, st.st_size, _ts(st.st_atime_ns), _ts(st.st_mtime_ns),
            _ts(st.st_ctime_ns))


# --- streams over a descriptor (each holds its own dup, so dropping the descriptor first is safe)


class FileInput(InputStream):
    def __init__(self, fd: int, offset: int) -> None:
        self.fd = os.dup(fd)
        self.offset = offset

    def read(self, n: int) -> bytes | None:
        try:
            data = os.pread(self.fd, n, self.offset)
        except OSError as exc:
            raise StreamFailed(exc.strerror or str(exc)) from None
        if not data and n:
            return None
        self.offset += len(data)
        return data

    def blocking_read(self, n: int) -> bytes | None:
        return self.read(n)

    def close(self) -> None:
        fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)


class FileOutput(OutputStream):
    """Writes at a running offset, or (offset None) at the end of the file each time."""

    def __init__(self, fd: int, offset: int | None) -> None:
        self.fd = os.dup(fd)
        self.offset = offset

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        try:
            while view:
                at = self.offset if self.offset is not None else os.fstat(self.fd).st_size
                n = os.pwrite(self.fd, view, at)
                if self.offset is not None:
                    self.offset += n
                view = view[n:]
        except OSError:
            # wasi:io output streams report failures only as `closed` to this host's writers.
            self.closed = True

    def close(self) -> None:
        fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)


@_guard
def _read_via_stream(d: Descriptor, offset: int) -> tuple[str, Any]:
    _file_access(d, "read")
    return ok(FileInput(d.fd, offset))


@_guard
def _write_via_stream(d: Descriptor, offset: int) -> tuple[str, Any]:
    _writable(d)
    _file_access(d, "write")
    return ok(FileOutput(d.fd, offset))


@_guard
def _append_via_stream(d: Descriptor) -> tuple[str, Any]:
    _writable(d)
    _file_access(d, "write")
    return ok(FileOutput(d.fd, None))


# --- the descriptor itself


@_guard
def _advise(d: Descriptor, offset: int, length: int, advice: str) -> tuple[str, Any]:
    if d.is_dir:
        return err("bad-descriptor")
    os.posix_fadvise(d.fd, offset, length, _ADVICE[advice])
    return OK


@_guard
def _sync(d: Descriptor) -> tuple[str, Any]:
    os.fsync(d.fd)
    return OK


@_guard
def _sync_data(d: Descriptor) -> tuple[str, Any]:
    os.fdatasync(d.fd)
    return OK


def _get_flags(d: Descriptor) -> tuple[str, Any]:
    return ok(d.flags)


@_guard
def _get_type(d: Descriptor) -> tuple[str, Any]:
    return ok(_type_of(os.fstat(d.fd).st_mode))


@_guard
def _set_size(d: Descriptor, size: int) -> tuple[str, Any]:
    _writable(d)
    _file_access(d, "write")
    os.ftruncate(d.fd, size)
    return OK


def _times(current: os.stat_result, atime: tuple[str, Any], mtime: tuple[str, Any]) -> tuple[int, int]:
    """(atime, mtime) in ns from two new-timestamp variants; no-change keeps the current value."""
    now = time.time_ns()

    def pick(new: tuple[str, Any], old: int) -> int:
        case, value = new
        if case == "now":
            return now
        if case == "timestamp":
            seconds, nanos = value
            return int(seconds) * 1_000_000_000 + int(nanos)
        return old

    return pick(atime, current.st_atime_ns), pick(mtime, current.st_mtime_ns)


@_guard
def _set_times(d: Descriptor, atime: tuple[str, Any], mtime: tuple[str, Any]) -> tuple[str, Any]:
    _writable(d)
    os.utime(d.fd, ns=_times(os.fstat(d.fd), atime, mtime))
    return OK


@_guard
def _read(d: Descriptor, length: int, offset: int) -> tuple[str, Any]:
    _file_access(d, "read")
    data = os.pread(d.fd, length, offset)
    return ok((data, len(data) < length))


@_guard
def _write(d: Descriptor, data: bytes, offset: int) -> tuple[str, Any]:
    _writable(d)
    _file_access(d, "write")
    return ok(os.pwrite(d.fd, data, offset))


class DirectoryEntries:
    def __init__(self, entries: list[tuple[str, str]]) -> None:
        self.entries = deque(entries)


@_guard
def _read_directory(d: Descriptor) -> tuple[str, Any]:
    if not d.is_dir:
        return err("not-directory")
    entries = []
    with os.scandir(d.fd) as it:  # scandir(fd) reads from its own dup of the descriptor
        for entry in it:
            try:
                kind = _type_of(entry.stat(follow_symlinks=False).st_mode)
            except FileNotFoundError:
                continue  # removed while listing
            entries.append((kind, entry.name))
    return ok(DirectoryEntries(sorted(entries, key=lambda e: e[1])))


def _read_directory_entry(s: DirectoryEntries) -> tuple[str, Any]:
    return ok(s.entries.popleft() if s.entries else None)


@_guard
def _stat(d: Descriptor) -> tuple[str, Any]:
    return ok(_stat_record(os.fstat(d.fd)))


@_guard
def _metadata_hash(d: Descriptor) -> tuple[str, Any]:
    st = os.fstat(d.fd)
    return ok((st.st_ino, st.st_dev))


def _is_same_object(a: Descriptor, b: Descriptor) -> bool:
    try:
        sa, sb = os.fstat(a.fd), os.fstat(b.fd)
    except OSError:
        return False
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


# --- paths under a directory descriptor


@_guard
def _stat_at(d: Descriptor, flags: frozenset[str], rel: str) -> tuple[str, Any]:
    with _at(d, rel, "symlink-follow" in flags) as (parent, name):
        return ok(_stat_record(os.stat(name, dir_fd=parent, follow_symlinks=False)))


@_guard
def _metadata_hash_at(d: Descriptor, flags: frozenset[str], rel: str) -> tuple[str, Any]:
    with _at(d, rel, "symlink-follow" in flags) as (parent, name):
        st = os.stat(name, dir_fd=parent, follow_symlinks=False)
    return ok((st.st_ino, st.st_dev))


@_guard
def _set_times_at(
    d: Descriptor, flags: frozenset[str], rel: str, atime: tuple[str, Any], mtime: tuple[str, Any]
) -> tuple[str, Any]:
    _writable(d)
    with _at(d, rel, "symlink-follow" in flags) as (parent, name):
        current = os.stat(name, dir_fd=parent, follow_symlinks=False)
        os.utime(name, ns=_times(current, atime, mtime), dir_fd=parent, follow_symlinks=False)
    return OK


@_guard
def _open_at(
    d: Descriptor, path_flags: frozenset[str], rel: str, open_flags: frozenset[str], flags: frozenset[str]
) -> tuple[str, Any]:
    writing = bool({"write", "mutate-directory"} & flags) or bool({"create", "truncate"} & open_flags)
    if writing and d.read_only:
        return err("read-only")
    if "write" in flags and "directory" in open_flags:
        return err("is-directory")
    os_flags = os.O_CLOEXEC | os.O_NOFOLLOW
    if "read" in flags and "write" in flags:
        os_flags |= os.O_RDWR
    elif "write" in flags:
        os_flags |= os.O_WRONLY
    if "create" in open_flags:
        os_flags |= os.O_CREAT
    if "exclusive" in open_flags:
        os_flags |= os.O_EXCL
    if "truncate" in open_flags:
        os_flags |= os.O_TRUNC
    if "directory" in open_flags:
        os_flags |= os.O_DIRECTORY
    with _at(d, rel, "symlink-follow" in path_flags) as (parent, name):
        if name == "." and "create" in open_flags and "exclusive" in open_flags:
            return err("exist")
        fd = os.open(name, os_flags, 0o666, dir_fd=parent)
    is_dir = statmod.S_ISDIR(os.fstat(fd).st_mode)
    kept = {"read", "write", "mutate-directory"} & flags
    if d.read_only:
        kept &= {"read"}
    return ok(Descriptor(d.path / rel, d.read_only, is_dir, fd, frozenset(kept)))


@_guard
def _create_directory_at(d: Descriptor, rel: str) -> tuple[str, Any]:
    _writable(d)
    with _at(d, rel, False) as (parent, name):
        os.mkdir(name, dir_fd=parent)
    return OK


@_guard
def _link_at(
    d: Descriptor, old_flags: frozenset[str], old: str, new_dir: Descriptor, new: str
) -> tuple[str, Any]:
    _writable(new_dir)
    with _at(d, old, "symlink-follow" in old_flags) as (src, src_name), \
            _at(new_dir, new, False) as (dst, dst_name):
        os.link(src_name, dst_name, src_dir_fd=src, dst_dir_fd=dst, follow_symlinks=False)
    return OK


@_guard
def _readlink_at(d: Descriptor, rel: str) -> tuple[str, Any]:
    with _at(d, rel, False) as (parent, name):
        return ok(os.readlink(name, dir_fd=parent))


@_guard
def _remove_directory_at(d: Descriptor, rel: str) -> tuple[str, Any]:
    _writable(d)
    with _at(d, rel, False) as (parent, name):
        os.rmdir(name, dir_fd=parent)
    return OK


@_guard
def _rename_at(d: Descriptor, old: str, new_dir: Descriptor, new: str) -> tuple[str, Any]:
    _writable(d)
    _writable(new_dir)
    with _at(d, old, False) as (src, src_name), _at(new_dir, new, False) as (dst, dst_name):
        os.rename(src_name, dst_name, src_dir_fd=src, dst_dir_fd=dst)
    return OK


@_guard
def _symlink_at(d: Descriptor, target: str, rel: str) -> tuple[str, Any]:
    """Creates the link with the target as written (readlink-at returns it unchanged); whether it
    can be followed is decided when a path goes through it (`_walk`): never outside `d`'s root."""
    _writable(d)
    if target.startswith("/"):
        return err("not-permitted")
    with _at(d, rel, False) as (parent, name):
        os.symlink(target, name, dir_fd=parent)
    return OK


@_guard
def _unlink_file_at(d: Descriptor, rel: str) -> tuple[str, Any]:
    _writable(d)
    with _at(d, rel, False) as (parent, name):
        os.unlink(name, dir_fd=parent)
    return OK


def _get_directories() -> list[tuple[Descriptor, str]]:
    return [(template.fresh(), guest) for template, guest in store_state.state().preopens]


INTERFACES = {
    "wasi:filesystem/preopens": Interface("wasi:filesystem/preopens", {"get-directories": _get_directories}),
    "wasi:filesystem/types": Interface(
        "wasi:filesystem/types",
        {
            # Stream errors of file streams are raised as traps, never as io errors: none to map.
            "filesystem-error-code": lambda e: None,
            "[method]descriptor.read-via-stream": _read_via_stream,
            "[method]descriptor.write-via-stream": _write_via_stream,
            "[method]descriptor.append-via-stream": _append_via_stream,
            "[method]descriptor.advise": _advise,
            "[method]descriptor.sync-data": _sync_data,
            "[method]descriptor.get-flags": _get_flags,
            "[method]descriptor.get-type": _get_type,
            "[method]descriptor.set-size": _set_size,
            "[method]descriptor.set-times": _set_times,
            "[method]descriptor.read": _read,
            "[method]descriptor.write": _write,
            "[method]descriptor.read-directory": _read_directory,
            "[method]descriptor.sync": _sync,
            "[method]descriptor.create-directory-at": _create_directory_at,
            "[method]descriptor.stat": _stat,
            "[method]descriptor.stat-at": _stat_at,
            "[method]descriptor.set-times-at": _set_times_at,
            "[method]descriptor.link-at": _link_at,
            "[method]descriptor.open-at": _open_at,
            "[method]descriptor.readlink-at": _readlink_at,
            "[method]descriptor.remove-directory-at": _remove_directory_at,
            "[method]descriptor.rename-at": _rename_at,
            "[method]descriptor.symlink-at": _symlink_at,
            "[method]descriptor.unlink-file-at": _unlink_file_at,
            "[method]descriptor.is-same-object": _is_same_object,
            "[method]descriptor.metadata-hash": _metadata_hash,
            "[method]descriptor.metadata-hash-at": _metadata_hash_at,
            "[method]directory-entry-stream.read-directory-entry": _read_directory_entry,
        },
    ),
}
