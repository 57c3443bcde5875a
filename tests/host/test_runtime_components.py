"""Bad input, the compiled-component cache, and `wasmfleet serve`.

Checks: one-line ComponentError naming the file for a missing file, a non-wasm file, a core
module, a component importing an interface nobody implements, and a component without
wasi:http/incoming-handler; the cache compiles once (same artefact, not rewritten) and its key
changes with the wasmtime version; `wasmfleet serve` serves the WAT guest on a free port, stops
cleanly on SIGTERM, and prints one `error:` line (exit 1) for bad input; errors survive pickling
(they cross the pipe from worker processes).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from runtime_harness import build, make_spec, runtime_settings

from wasmfleet.host.runtime import engines, errors, instances, specs

WASMFLEET = str(Path(sys.executable).parent / "wasmfleet")


@pytest.mark.parametrize(
    ("name", "content", "cause"),
    [
        ("missing.wasm", None, "no such file"),
        ("text.wasm", b"hello, not wasm", "not a WebAssembly component"),
        ("core.wasm", b"\0asm\x01\0\0\0", "core WebAssembly module"),
    ],
)
def test_bad_files_give_one_line_errors(tmp_path: Path, settings: specs.RuntimeSettings, name: str,
                                        content: bytes | None, cause: str) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(errors.ComponentError) as info:
        instances.prepare_file(make_spec(path), settings)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(str(path))
    assert cause in message


@pytest.mark.parametrize(
    ("guest", "cause"),
    [
        ("unknown-import-wat", "imports acme:widgets/gadget@1.0.0, which this host does not implement"),
        ("no-handler-wat", "does not export wasi:http/incoming-handler"),
    ],
)
def test_unusable_components_give_one_line_errors(settings: specs.RuntimeSettings, guest: str, cause: str) -> None:
    path = build(guest)
    with pytest.raises(errors.ComponentError) as info:
        instances.prepare_file(make_spec(path), settings)
    assert "\n" not in str(info.value)
    assert str(info.value) == f"{path}: {cause}" or cause in str(info.value)


def test_cache_compiles_once_and_is_keyed_by_wasmtime_version(
    tmp_path: Path, hello_wat: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = runtime_settings(cache_dir=tmp_path / "cache")
    first = instances.prepare_file(make_spec(hello_wat), settings)
    mtime = first.stat().st_mtime_ns
    second = instances.prepare_file(make_spec(hello_wat), settings)
    assert first == second
    assert second.stat().st_mtime_ns == mtime
    tier = engines.tier_of(first)
    assert first == engines.artefact_path(settings.cache_dir, engines.file_sha256(hello_wat), tier=tier)
    monkeypatch.setattr(engines, "wasmtime_version", lambda: "0.0.0-other")
    third = instances.prepare_file(make_spec(hello_wat), settings)
    assert third != first
    assert len(list((tmp_path / "cache").glob("*.cwasm"))) == 2


def test_serve_command_serves_and_stops_on_sigterm(hello_wat: Path, tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [WASMFLEET, "serve", str(hello_wat), "--addr", "127.0.0.1:0", "--cache-dir", str(tmp_path)],
        stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        assert "serving" in line, line
        port = int(line.split("http://127.0.0.1:")[1].split("/")[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/") as r:
            assert r.read() == b"hello from wat\n"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()  # type: ignore[union-attr]


@pytest.mark.parametrize("guest", ["unknown-import-wat", "no-handler-wat"])
def test_serve_command_reports_bad_components_in_one_line(guest: str, tmp_path: Path) -> None:
    path = build(guest)
    proc = subprocess.run([WASMFLEET, "serve", str(path), "--addr", "127.0.0.1:0", "--cache-dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=60, env={**os.environ})
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"error: {path.resolve()}: ")  # .cache may be a symlink


def test_errors_cross_the_worker_pipe_intact() -> None:
    import pickle

    err = pickle.loads(pickle.dumps(errors.ComponentError("/srv/app.wasm", "imports x:y/z")))
    assert (str(err), err.path, err.cause) == ("/srv/app.wasm: imports x:y/z", "/srv/app.wasm", "imports x:y/z")
    trap = pickle.loads(pickle.dumps(errors.GuestTrap("too slow", deadline=True)))
    assert (str(trap), trap.deadline) == ("too slow", True)
