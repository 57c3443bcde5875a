"""wasi:filesystem in Python, called directly (no guest): preopens are the only way in.

Checks: open-at + read-via-stream reads a file under the preopen; paths escaping the preopen
(`..`, absolute, a symlink pointing outside) are refused; a read-only preopen refuses creating,
writing and deleting; read-directory lists entries with their types; stat reports size and type.
Every function of wasi:filesystem/types is implemented (none left to the linker's trap stub);
set-size, set-times(-at), advise, link-at, rename-at, symlink-at and readlink-at do what they
say on the host; a symlink the guest creates reads back as written but cannot be followed out of
the preopen (not-permitted), not even by a later open, stat, rename or hard link; `..` inside the
preopen works; a subdirectory descriptor is its own root; read-only preopens refuse the new
mutations too; a file opened without write refuses writes with bad-descriptor; streams survive
their descriptor being dropped first.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from wasmfleet.host.wasi import filesystem as fs

NONE: frozenset[str] = frozenset()
FOLLOW = frozenset({"symlink-follow"})
RW = frozenset({"read", "write"})
WIT = Path(__file__).resolve().parents[1] / "components" / "wit" / "deps" / "filesystem" / "package.wit"


def test_open_and_read_a_file_under_the_preopen(tmp_path: Path) -> None:
    (tmp_path / "hello.txt").write_bytes(b"hi there")
    root = fs.preopen(tmp_path, read_only=True)
    tag, d = fs._open_at(root, NONE, "hello.txt", NONE, frozenset({"read"}))
    assert tag == "ok"
    tag, stream = fs._read_via_stream(d, 3)
    assert tag == "ok"
    assert stream.read(100) == b"there"
    assert fs._stat(d) == ("ok", fs._stat_record((tmp_path / "hello.txt").stat()))
    assert fs._stat(d)[1][0] == "regular-file"


def test_paths_escaping_the_preopen_are_refused(tmp_path: Path) -> None:
    inside = tmp_path / "inside"
    inside.mkdir()
    (tmp_path / "secret").write_text("no")
    (inside / "link").symlink_to(tmp_path / "secret")
    root = fs.preopen(inside, read_only=False)
    for path in ("../secret", "/etc/passwd", "link"):
        tag, _ = fs._open_at(root, NONE, path, NONE, frozenset({"read"}))
        assert tag == "err", path


def test_read_only_preopen_refuses_changes(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    root = fs.preopen(tmp_path, read_only=True)
    assert fs._open_at(root, NONE, "new", frozenset({"create"}), frozenset({"write"})) == ("err", "read-only")
    assert fs._unlink_file_at(root, "f") == ("err", "read-only")
    assert fs._create_directory_at(root, "d") == ("err", "read-only")
    assert (tmp_path / "f").exists()


def test_read_directory_lists_entries(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("a")
    (tmp_path / "sub").mkdir()
    root = fs.preopen(tmp_path, read_only=False)
    tag, entries = fs._read_directory(root)
    assert tag == "ok"
    seen = []
    while True:
        _, entry = fs._read_directory_entry(entries)
        if entry is None:
            break
        seen.append(entry)
    assert seen == [("regular-file", "a.txt"), ("directory", "sub")]


def _open(root: fs.Descriptor, path: str, open_flags: frozenset[str] = NONE,
          flags: frozenset[str] = frozenset({"read"})) -> fs.Descriptor:
    tag, d = fs._open_at(root, FOLLOW, path, open_flags, flags)
    assert tag == "ok", (path, d)
    assert isinstance(d, fs.Descriptor)
    return d


def test_every_function_of_the_wit_interface_is_implemented() -> None:
    text = WIT.read_text().split("interface types {", 1)[1]
    names = set(re.findall(r"^    ([a-z-]+): func", text, re.M))
    for resource, body in re.findall(r"^    resource ([a-z-]+) \{(.*?)^    \}", text, re.S | re.M):
        names |= {f"[method]{resource}.{m}" for m in re.findall(r"^        ([a-z-]+): func", body, re.M)}
    assert len(names) == 29, sorted(names)
    implemented = set(fs.INTERFACES["wasi:filesystem/types"].functions)
    assert names - implemented == set()


def test_set_size_set_times_and_advise(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"0123456789")
    root = fs.preopen(tmp_path, read_only=False).fresh()
    d = _open(root, "f", flags=RW)
    assert fs._set_size(d, 4) == ("ok", None)
    assert (tmp_path / "f").read_bytes() == b"0123"
    assert fs._set_size(d, 6) == ("ok", None)
    assert (tmp_path / "f").read_bytes() == b"0123\0\0"
    assert fs._advise(d, 0, 0, "sequential") == ("ok", None)
    atime = ("timestamp", (1_000_000_000, 5))
    assert fs._set_times(d, atime, ("timestamp", (1_200_000_000, 7))) == ("ok", None)
    st = (tmp_path / "f").stat()
    assert (st.st_atime_ns, st.st_mtime_ns) == (1_000_000_000_000_000_005, 1_200_000_000_000_000_007)
    assert fs._set_times(d, ("no-change", None), ("now", None)) == ("ok", None)
    st = (tmp_path / "f").stat()
    assert st.st_atime_ns == 1_000_000_000_000_000_005
    assert st.st_mtime_ns > 1_700_000_000 * 10**9
    assert fs._set_times_at(root, NONE, "f", ("now", None), ("timestamp", (5, 0))) == ("ok", None)
    assert (tmp_path / "f").stat().st_mtime_ns == 5 * 10**9
    reader = _open(root, "f")
    assert fs._set_size(reader, 0) == ("err", "bad-descriptor")
    assert fs._write(reader, b"x", 0) == ("err", "bad-descriptor")
    assert fs._write_via_stream(reader, 0) == ("err", "bad-descriptor")


def test_links_renames_and_readlink(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("A")
    (tmp_path / "dir").mkdir()
    root = fs.preopen(tmp_path, read_only=False).fresh()
    sub = _open(root, "dir", frozenset({"directory"}))
    assert fs._link_at(root, NONE, "a.txt", sub, "hard.txt") == ("ok", None)
    assert os.stat(tmp_path / "a.txt").st_nlink == 2
    assert fs._rename_at(sub, "hard.txt", root, "moved.txt") == ("ok", None)
    assert (tmp_path / "moved.txt").read_text() == "A"
    assert fs._rename_at(root, "nope", root, "x") == ("err", "no-entry")
    assert fs._symlink_at(root, "dir/../a.txt", "ln") == ("ok", None)
    assert fs._readlink_at(root, "ln") == ("ok", "dir/../a.txt")
    assert fs._readlink_at(root, "a.txt") == ("err", "invalid")
    tag, stream = fs._read_via_stream(_open(root, "ln"), 0)
    assert tag == "ok" and stream.read(10) == b"A"
    assert fs._stat_at(root, NONE, "ln")[1][0] == "symbolic-link"
    assert fs._stat_at(root, FOLLOW, "ln")[1][0] == "regular-file"
    assert fs._symlink_at(root, "x", "ln") == ("err", "exist")


def test_guest_made_symlinks_cannot_lead_out(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("no")
    inside = tmp_path / "inside"
    (inside / "sub").mkdir(parents=True)
    root = fs.preopen(inside, read_only=False).fresh()
    assert fs._symlink_at(root, "../secret", "out") == ("ok", None)
    assert fs._symlink_at(root, "sub/../../secret", "deep") == ("ok", None)
    assert fs._symlink_at(root, "/etc/passwd", "abs") == ("err", "not-permitted")
    assert fs._readlink_at(root, "out") == ("ok", "../secret")
    for path in ("out", "deep", "sub/../../secret", "sub/../out"):
        assert fs._open_at(root, FOLLOW, path, NONE, frozenset({"read"})) == ("err", "not-permitted"), path
        assert fs._stat_at(root, FOLLOW, path) == ("err", "not-permitted"), path
    assert fs._open_at(root, FOLLOW, "out", frozenset({"create"}), RW) == ("err", "not-permitted")
    assert fs._set_times_at(root, FOLLOW, "out", ("now", None), ("now", None)) == ("err", "not-permitted")
    assert fs._link_at(root, FOLLOW, "out", root, "hard") == ("err", "not-permitted")
    assert fs._rename_at(root, "sub", root, "../moved") == ("err", "not-permitted")
    assert fs._create_directory_at(root, "sub/../../made") == ("err", "not-permitted")
    assert not (tmp_path / "made").exists() and not (tmp_path / "moved").exists()
    assert (tmp_path / "secret").read_text() == "no"
    # `..` that stays inside is fine; a subdirectory descriptor is its own root.
    assert fs._stat_at(root, NONE, "sub/../sub")[1][0] == "directory"
    sub = _open(root, "sub", frozenset({"directory"}))
    assert fs._stat_at(sub, NONE, "..") == ("err", "not-permitted")


def test_read_only_preopen_refuses_every_change(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("keep")
    root = fs.preopen(tmp_path, read_only=True).fresh()
    d = _open(root, "f")
    assert fs._get_flags(root) == ("ok", frozenset({"read"}))
    for result in (
        fs._set_size(d, 0), fs._set_times(d, ("now", None), ("now", None)),
        fs._set_times_at(root, NONE, "f", ("now", None), ("now", None)),
        fs._rename_at(root, "f", root, "g"), fs._link_at(root, NONE, "f", root, "g"),
        fs._symlink_at(root, "f", "g"), fs._remove_directory_at(root, "f"),
        fs._open_at(root, NONE, "f", NONE, RW), fs._write_via_stream(d, 0), fs._append_via_stream(d),
    ):
        assert result == ("err", "read-only")
    assert (tmp_path / "f").read_text() == "keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]


def test_streams_outlive_their_descriptor(tmp_path: Path) -> None:
    root = fs.preopen(tmp_path, read_only=False).fresh()
    d = _open(root, "log", frozenset({"create"}), RW)
    _, out = fs._append_via_stream(d)
    d.close()  # the guest dropped the descriptor before the stream
    out.write(b"one ")
    out.write(b"two")
    out.close()
    assert (tmp_path / "log").read_bytes() == b"one two"
