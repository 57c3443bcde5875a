"""wasi:filesystem in Python, called directly (no guest): preopens are the only way in.

Checks: open-at + read-via-stream reads a file under the preopen; paths escaping the preopen
(`..`, absolute, a symlink pointing outside) are refused; a read-only preopen refuses creating,
writing and deleting; read-directory lists entries with their types; stat reports size and type.
"""

from __future__ import annotations

from pathlib import Path

from wasmfleet.host.wasi import filesystem as fs

NONE: frozenset[str] = frozenset()


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
