"""The load-time retyping of wasi:io/streams byte lists (host/runtime/byte_lists.py), checked on
the real guests: what `wasm-tools print` shows after the rewrite, that wasm-tools still validates
it, and when the rewrite must hold back. Byte-exactness through each guest is covered by the 1 MB
echo tests in test_runtime_guests.py."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from runtime_harness import build

from wasmfleet.host.runtime import byte_lists

WASM_TOOLS = str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "wasm-tools")


def _tool() -> str:
    import shutil

    return WASM_TOOLS if Path(WASM_TOOLS).exists() else (shutil.which("wasm-tools") or "wasm-tools")


def _print(data: bytes, tmp_path: Path) -> str:
    path = tmp_path / "rewritten.wasm"
    path.write_bytes(data)
    subprocess.run([_tool(), "validate", str(path)], check=True, capture_output=True)
    out = subprocess.run([_tool(), "print", "--skeleton", str(path)], check=True, capture_output=True, text=True)
    return out.stdout


def _lowers(text: str, func: str) -> list[str]:
    """The `canon lower` lines of wasi:io/streams function `func` (every imported version)."""
    return [line for line in text.splitlines()
            if "canon lower" in line and "wasi:io/streams" in line and f"]{func}\"" in line.split("canon lower")[0]]


def _streams_type(text: str) -> str:
    start = text.index("(type $ty-wasi:io/streams")
    return text[start:text.index("(import", start)]


def test_wat_guest_reads_bytes_as_latin1_strings_and_writes_byte_lists(tmp_path: Path) -> None:
    """Reads (host to guest) become latin-1 strings; writes stay list<u8>, since lifting a
    latin1+utf16 string traps on a pointer that is not 2-byte aligned and guests write from any
    address (the conformance suite's C programs do, through the same rewrite)."""
    original = build("hello-wat").read_bytes()
    rewritten = byte_lists.retype(original)
    assert rewritten is not None
    text = _print(rewritten, tmp_path)
    streams = _streams_type(text)
    assert "(param \"contents\" string)" not in streams
    assert re.search(r"\(result string \(error \d+\)\)", streams)
    lines = _lowers(text, "input-stream.blocking-read")
    assert lines and all("string-encoding=latin1+utf16" in line for line in lines)
    writes = _lowers(text, "output-stream.blocking-write-and-flush")
    assert writes and not any("latin1" in line for line in writes)
    # Nothing else changed: other interfaces keep their encodings.
    before = _print(original, tmp_path)
    assert before.count("string-encoding=utf8") == text.count("string-encoding=utf8")


def test_js_guest_reads_are_retyped_and_writes_are_not(tmp_path: Path) -> None:
    rewritten = byte_lists.retype(build("hello-js").read_bytes())
    assert rewritten is not None
    text = _print(rewritten, tmp_path)
    for func in ("input-stream.read", "input-stream.blocking-read"):
        lines = _lowers(text, func)
        assert lines and all("latin1+utf16" in line for line in lines), func
    writes = _lowers(text, "output-stream.write")
    assert writes and not any("latin1" in line for line in writes)


def test_reads_through_an_allocator_that_cannot_shrink_stay_byte_lists(tmp_path: Path) -> None:
    """componentize-py lowers reads through a re-exported allocator (its runtime's, which traps
    on a shrink) and the preview1 adapter's one-shot allocator: reads must stay list<u8>, and
    writes are never retyped, so nothing is left to rewrite."""
    assert byte_lists.retype(build("hello-py").read_bytes()) is None


@pytest.mark.parametrize("data", [
    b"",
    b"\0asm\x01\x00\x00\x00",  # a core module
    b"\0asm\x0d\x00\x01\x00\x07\xff",  # a section running past the end
    b"\0asm\x0d\x00\x01\x00" + bytes(range(256)),
])
def test_what_cannot_be_parsed_is_left_alone(data: bytes) -> None:
    assert byte_lists.retype(data) is None


def test_a_component_without_streams_is_left_alone() -> None:
    assert byte_lists.retype(build("unknown-import-wat").read_bytes()) is None
