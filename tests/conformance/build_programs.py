"""Builds the conformance programs (tests/conformance/*.c) into WASI 0.2 command components.

    from build_programs import build_program
    wasm: Path = build_program("files")   # -> .cache/conformance/files-<hash>.wasm

or from a shell: `python tests/conformance/build_programs.py [NAME...]` (prints the paths).

Each program: `clang --target=wasm32-wasi --sysroot=/usr -O2` (Debian's wasi-libc, WASI 0.1),
then `wasm-tools component new --adapt wasi_snapshot_preview1=<command adapter>`. The adapter is
jco's (npm @bytecodealliance/jco, lib/), installed into .cache/jco by scripts/deps.d/wasi-c.sh;
WASMFLEET_PREVIEW1_ADAPTER overrides its path. Outputs are cached by a hash of the program, the
shared header, the adapter and the clang version; concurrent builders are serialized by a lock.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
ADAPTER_IN_CACHE = REPO / ".cache" / "jco" / "node_modules" / "@bytecodealliance" / "jco" / "lib" / (
    "wasi_snapshot_preview1.command.wasm"
)
SETUP_HINT = "run scripts/deps.d/wasi-c.sh (clang, lld, wasi-libc, jco's preview1 adapter)"


class ToolchainMissing(RuntimeError):
    """clang, wasi-libc or the preview1 adapter is not installed."""


def programs() -> list[str]:
    return sorted(p.stem for p in HERE.glob("*.c"))


def cache_dir() -> Path:
    return Path(os.environ.get("WASMFLEET_COMPONENT_CACHE", REPO / ".cache" / "components")).parent / "conformance"


def adapter() -> Path:
    path = Path(os.environ.get("WASMFLEET_PREVIEW1_ADAPTER", ADAPTER_IN_CACHE))
    if not path.is_file():
        raise ToolchainMissing(f"preview1 command adapter not found at {path}: {SETUP_HINT}")
    return path


def _tool(name: str) -> str:
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise ToolchainMissing(f"{name} not found: {SETUP_HINT}")
    return found


def _clang_version(clang: str) -> str:
    return subprocess.run([clang, "--version"], capture_output=True, text=True, check=True).stdout


def _hash(name: str, clang: str, adapter_path: Path) -> str:
    h = hashlib.sha256(name.encode())
    for path in (HERE / f"{name}.c", HERE / "check.h", adapter_path):
        h.update(path.read_bytes())
    h.update(_clang_version(clang).encode())
    return h.hexdigest()[:16]


def build_program(name: str) -> Path:
    source = HERE / f"{name}.c"
    if not source.is_file():
        raise FileNotFoundError(f"no conformance program {source}")
    clang = _tool("clang")
    if not Path("/usr/lib/wasm32-wasi/libc.a").exists():
        raise ToolchainMissing(f"wasi-libc is not installed: {SETUP_HINT}")
    adapter_path = adapter()
    out_dir = cache_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{name}-{_hash(name, clang, adapter_path)}.wasm"
    if target.exists():
        return target
    with open(out_dir / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if target.exists():
            return target
        with tempfile.TemporaryDirectory() as tmp:
            core = Path(tmp) / f"{name}.core.wasm"
            component = Path(tmp) / f"{name}.wasm"
            _run([clang, "--target=wasm32-wasi", "--sysroot=/usr", "-O2", "-Wall", "-o", str(core), str(source)])
            _run([_tool("wasm-tools"), "component", "new", str(core),
                  "--adapt", f"wasi_snapshot_preview1={adapter_path}", "-o", str(component)])
            shutil.move(str(component), target)
    return target


def _run(cmd: list[str]) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr}")


if __name__ == "__main__":
    for arg in sys.argv[1:] or programs():
        print(build_program(arg))
