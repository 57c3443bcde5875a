"""A content-addressed store of fetched components, plus a reference -> digest index.

Layout under the cache dir:

    blobs/sha256/<hex>      the component bytes, named by their digest (written once, atomically)
    refs/<sha256 of ref>    the digest a mutable reference (tag, URL) last resolved to

Blobs are verified while written (the digest is computed over the bytes as they arrive) and moved
into place with an atomic rename, so a reader never sees a half-written file and two hosts sharing a
cache dir cannot corrupt each other.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path
from typing import IO


class DigestMismatch(ValueError):
    """The bytes received do not hash to the digest the registry promised."""


class BlobWriter:
    """Stream bytes into the cache: `write()` chunks, then `commit(expected_digest)`."""

    def __init__(self, cache: BlobCache) -> None:
        self._cache = cache
        self._hash = hashlib.sha256()
        self.size = 0
        fd, name = tempfile.mkstemp(dir=cache.tmp_dir, suffix=".part")
        self._tmp = Path(name)
        self._file: IO[bytes] = os.fdopen(fd, "wb")

    def write(self, chunk: bytes) -> None:
        self._hash.update(chunk)
        self._file.write(chunk)
        self.size += len(chunk)

    def commit(self, expected_digest: str | None = None) -> str:
        """Move the bytes into place; returns their digest ("sha256:<hex>")."""
        self._file.close()
        digest = "sha256:" + self._hash.hexdigest()
        if expected_digest is not None and expected_digest != digest:
            self.abort()
            raise DigestMismatch(f"expected {expected_digest}, received bytes hash to {digest}")
        os.replace(self._tmp, self._cache.blob_path(digest))
        return digest

    def abort(self) -> None:
        with contextlib.suppress(OSError):
            self._file.close()
        with contextlib.suppress(FileNotFoundError):
            self._tmp.unlink()


class BlobCache:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.blob_dir = self.root / "blobs" / "sha256"
        self.ref_dir = self.root / "refs"
        self.tmp_dir = self.root / "tmp"
        for directory in (self.blob_dir, self.ref_dir, self.tmp_dir):
            directory.mkdir(parents=True, exist_ok=True)

    def blob_path(self, digest: str) -> Path:
        algorithm, _, hexdigest = digest.partition(":")
        if algorithm != "sha256" or not hexdigest or not all(c in "0123456789abcdef" for c in hexdigest):
            raise ValueError(f"unsupported digest {digest!r} (only sha256 is supported)")
        return self.blob_dir / hexdigest

    def has_blob(self, digest: str) -> bool:
        try:
            return self.blob_path(digest).is_file()
        except ValueError:
            return False

    def touch(self, digest: str) -> None:
        """Mark a blob as just used (its mtime orders eviction)."""
        with contextlib.suppress(OSError, ValueError):
            os.utime(self.blob_path(digest))

    def prune(self, max_bytes: int, keep: frozenset[str] = frozenset()) -> list[str]:
        """Evict least recently used blobs until the cache holds at most `max_bytes`; never the
        digests in `keep`. Returns the evicted digests."""
        entries = []
        for path in self.blob_dir.iterdir():
            with contextlib.suppress(FileNotFoundError):
                stat = path.stat()
                entries.append((stat.st_mtime, stat.st_size, path))
        total = sum(size for _, size, _ in entries)
        evicted: list[str] = []
        for _, size, path in sorted(entries):
            if total <= max_bytes:
                break
            digest = "sha256:" + path.name
            if digest in keep:
                continue
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            total -= size
            evicted.append(digest)
        return evicted

    def writer(self) -> BlobWriter:
        return BlobWriter(self)

    def _ref_path(self, ref: str) -> Path:
        return self.ref_dir / hashlib.sha256(ref.encode()).hexdigest()

    def resolved(self, ref: str) -> str | None:
        """The digest `ref` last resolved to, if that blob is still cached."""
        try:
            digest = self._ref_path(ref).read_text().strip()
        except FileNotFoundError:
            return None
        return digest if self.has_blob(digest) else None

    def remember(self, ref: str, digest: str) -> None:
        path = self._ref_path(ref)
        fd, tmp = tempfile.mkstemp(dir=self.tmp_dir)
        with os.fdopen(fd, "w") as handle:
            handle.write(digest)
        os.replace(tmp, path)


def file_digest(path: Path) -> str:
    hasher = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            hasher.update(chunk)
    return "sha256:" + hasher.hexdigest()
