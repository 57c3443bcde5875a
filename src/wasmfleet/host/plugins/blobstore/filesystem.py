"""The filesystem backend: a container is a directory under config.root, an object a file in it.

Object names may contain "/" (nested directories, listed as "a/b"); a name that is empty, absolute,
has an empty, "." or ".." component, or a NUL, is refused, and every path is checked (after
resolving symlinks) to stay under the root, so a name never reaches outside it. Container names
are one path component and may not start with "." (the root's ".partial" directory holds bodies
being written: an object appears, complete, when its writer commits with one rename).
Times: created-at is the file's (or directory's) status-change time, in seconds.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import BinaryIO

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

PARTIAL = ".partial"


def _failed(what: str, exc: OSError) -> BlobstoreError:
    # The guest sees the reason, not the host's paths.
    return BlobstoreError(f"filesystem: {what}: {exc.strerror or type(exc).__name__}")


class _FileReader(ObjectReader):
    def __init__(self, file: BinaryIO, lo: int, hi: int) -> None:
        self.size = hi - lo
        self._file = file
        self._left = hi - lo
        file.seek(lo)

    def read(self, n: int) -> bytes | None:
        if self._left <= 0:
            return None
        try:
            data = self._file.read(min(n, self._left))
        except OSError as exc:
            raise _failed("read", exc) from exc
        if not data:
            return None  # truncated underneath us: end here
        self._left -= len(data)
        return data

    def close(self) -> None:
        self._file.close()


class _FileWriter(ObjectWriter):
    def __init__(self, backend: FilesystemBackend, target: Path, describe: str) -> None:
        self._backend = backend
        self._target = target
        self._describe = describe
        partial = backend.root / PARTIAL
        try:
            partial.mkdir(parents=True, exist_ok=True)
            fd, temp = tempfile.mkstemp(dir=partial)
        except OSError as exc:
            raise _failed(f"writing {describe}", exc) from exc
        self._temp = Path(temp)
        self._file: BinaryIO | None = os.fdopen(fd, "wb")

    def write(self, data: bytes) -> None:
        if self._file is None:
            raise BlobstoreError(f"{self._describe}: already committed or aborted")
        try:
            self._file.write(data)
        except OSError as exc:
            self.abort()
            raise _failed(f"writing {self._describe}", exc) from exc

    def commit(self) -> None:
        if self._file is None:
            raise BlobstoreError(f"{self._describe}: already committed or aborted")
        try:
            self._file.close()
            self._file = None
            self._target.parent.mkdir(parents=True, exist_ok=True)
            self._backend.check_inside(self._target)
            if self._target.is_dir():
                raise BlobstoreError(f"{self._describe}: a directory of objects has this name")
            os.replace(self._temp, self._target)
        except OSError as exc:
            raise _failed(f"writing {self._describe}", exc) from exc
        finally:
            self.abort()

    def abort(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        with contextlib.suppress(FileNotFoundError):
            self._temp.unlink()


class FilesystemBackend(Backend):
    kind = "filesystem"

    def __init__(self, root: Path) -> None:
        self.root = root

    # ---- names -> paths ------------------------------------------------------------------------

    def check_inside(self, path: Path) -> None:
        real_root = os.path.realpath(self.root)
        real = os.path.realpath(path)
        if real != real_root and not real.startswith(real_root + os.sep):
            raise BlobstoreError("filesystem: the name leads outside the backend's root")

    def _container_dir(self, name: str) -> Path:
        if not name or "/" in name or "\0" in name or name.startswith(".") or "\\" in name:
            raise BlobstoreError(f"invalid container name {name!r} for the filesystem backend "
                                 "(one path component, not starting with '.')")
        path = self.root / name
        self.check_inside(path)
        return path

    def _existing_dir(self, name: str) -> Path:
        path = self._container_dir(name)
        if not path.is_dir():
            raise no_such_container(name)
        return path

    def _object_path(self, container: str, name: str) -> Path:
        parts = name.split("/")
        if not name or "\0" in name or any(p in ("", ".", "..") for p in parts):
            raise BlobstoreError(f"invalid object name {name!r} for the filesystem backend "
                                 "(no empty, '.' or '..' components, not absolute)")
        path = self._existing_dir(container).joinpath(*parts)
        self.check_inside(path)
        return path

    # ---- containers ----------------------------------------------------------------------------

    def create_container(self, name: str) -> None:
        path = self._container_dir(name)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            path.mkdir()
        except FileExistsError:
            raise container_exists(name) from None
        except OSError as exc:
            raise _failed(f"creating container '{name}'", exc) from exc

    def container_info(self, name: str) -> ContainerInfo:
        path = self._existing_dir(name)
        return ContainerInfo(name, int(path.stat().st_ctime))

    def delete_container(self, name: str) -> None:
        path = self._container_dir(name)
        try:
            shutil.rmtree(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise _failed(f"deleting container '{name}'", exc) from exc

    def container_exists(self, name: str) -> bool:
        return self._container_dir(name).is_dir()

    def clear(self, container: str) -> None:
        path = self._existing_dir(container)
        try:
            for child in path.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()
        except OSError as exc:
            raise _failed(f"clearing container '{container}'", exc) from exc

    # ---- objects -------------------------------------------------------------------------------

    def list_objects(self, container: str) -> list[str]:
        base = self._existing_dir(container)
        names = []
        for directory, _, files in os.walk(base):
            rel = Path(directory).relative_to(base)
            names += [(rel / f).as_posix() if rel.parts else f for f in files]
        return sorted(names)

    def object_info(self, container: str, name: str) -> ObjectInfo:
        path = self._object_path(container, name)
        try:
            st = path.stat()
        except FileNotFoundError:
            raise no_such_object(container, name) from None
        except OSError as exc:
            raise _failed(f"object '{name}'", exc) from exc
        if not path.is_file():
            raise no_such_object(container, name)
        return ObjectInfo(name, container, int(st.st_ctime), st.st_size)

    def delete_object(self, container: str, name: str) -> None:
        path = self._object_path(container, name)
        base = self._existing_dir(container)
        try:
            if path.is_file() or path.is_symlink():
                path.unlink()
            # Remove directories the name's "/" made, once empty.
            parent = path.parent
            while parent != base and parent.is_dir() and not any(parent.iterdir()):
                parent.rmdir()
                parent = parent.parent
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise _failed(f"deleting object '{name}'", exc) from exc

    def open_reader(self, container: str, name: str, start: int, end: int) -> ObjectReader:
        path = self._object_path(container, name)
        try:
            file = open(path, "rb")  # noqa: SIM115 (closed by the reader)
        except (FileNotFoundError, IsADirectoryError):
            raise no_such_object(container, name) from None
        except OSError as exc:
            raise _failed(f"reading object '{name}'", exc) from exc
        size = os.fstat(file.fileno()).st_size
        lo, hi = clamp_range(start, end, size)
        return _FileReader(file, lo, hi)

    def open_writer(self, container: str, name: str) -> ObjectWriter:
        return _FileWriter(self, self._object_path(container, name), f"object '{name}'")
