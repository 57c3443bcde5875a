"""Builds the test guests from their sources, cached by a hash of those sources.

    from tests.components.build import build_component
    wasm: Path = build_component("hello-wat")     # -> .cache/components/hello-wat-<hash>.wasm

or from a shell: `python tests/components/build.py hello-wat` (prints the path).

Guests (each a directory here):
  hello-wat  hand-written WAT core module -> `wasm-tools component embed/new` (about 50 ms)
  print-wat  WAT guest printing each request's path on stdout/stderr (same build)
  unknown-import-wat, no-handler-wat  bad-input fixtures (WAT, same build)
  messaging-wat  wasmcloud:messaging handler in WAT (replies upper-cased; "trap"/"spin" bodies fail)
  messaging-ask-wat  handler in WAT answering with the reply of its own consumer.request to ask.backend
  kv-getset-wat  wasi:keyvalue open, set and get per request (WAT; bench/keyvalue_bench.py)
  no-body-wat  answers 204 (or 200 on /2...) without ever creating a response body (WAT)
  hello-py   componentize-py app (about 25 s the first time)
  hello-js   componentize-js app (about 40 s the first time; needs scripts/deps.d/components.sh)
  config-logging-py, greeter-py, keyvalue-py  componentize-py apps of the plugin tests (about 25 s each)
  link-*-wat  WAT fixtures of linked components (same build as hello-wat)
  text-lib-py, text-front-js  two linked components: a componentize-py library exporting
             wasmfleet:demo/text and a componentize-js HTTP front importing it
  blobstore-splice-py  blobstore-py's app built with one wasi:io (the blobstore WIT's io@0.2.1 rewritten
                       to 0.2.12 in a temporary copy), so it can splice HTTP bodies to and from objects
  sockets-py  componentize-py wasi:cli command using wasi:sockets (tests/host/test_sockets*.py, bench)
  sockets-http-py  componentize-py HTTP guest asking a TCP port on its workload's private loopback
  keyvalue-js  componentize-js twin of keyvalue-py (same paths and answers)
  service-c  a C command (wasi:cli/run) for the service tests: serves, exits, traps or spins as its
             environment says; clang + wasi-libc + the preview1 command adapter, exactly as the
             conformance programs (tests/conformance/build_programs.py; about 1 s)
  service-example, service-example-front  examples/service built from its sources there: the
             componentize-py TCP service and the HTTP component asking it (about 25 s each)

The cache directory is `<repo>/.cache/components` (gitignored) unless WASMFLEET_COMPONENT_CACHE
is set. A build happens once per source change; concurrent builders are serialized by a lock file.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
WIT = HERE / "wit"
LINK_WAT = ("link-calc-wat", "link-front-wat", "link-ping-wat", "link-pong-wat", "link-counters-wat",
            "link-counters-user-wat", "link-next-user-wat", "link-ping-leaf-wat")
"""WAT fixtures of linked components (worlds in wit/deps/linktest*, see tests/host/test_linking.py)."""
GUESTS = ("hello-wat", "print-wat", "unknown-import-wat", "no-handler-wat", "messaging-wat", "messaging-ask-wat",
          "no-body-wat",
          "kv-getset-wat", "hello-py", "hello-js",
          "config-logging-py", "greeter-py", "keyvalue-py", "keyvalue-js", "text-lib-py", "text-front-js",
          "blobstore-py", "blobstore-splice-py", "sockets-py", "sockets-http-py", "service-c", "service-example",
          "service-example-front", *LINK_WAT)

PY_WORLDS = {
    "hello-py": ("wasi:http/proxy@0.2.12", ()),
    "config-logging-py": ("wasmfleet:tests/config-logging-guest", ("config", "logging")),
    "greeter-py": ("wasmfleet:tests/greeter-guest", ("example-greeting",)),
    "keyvalue-py": ("wasmfleet:tests/keyvalue-guest", ("keyvalue",)),
    "text-lib-py": ("wasmfleet:demo/text-library@0.1.0", ("demo", "config")),
    "blobstore-py": ("wasmfleet:tests/blobstore-guest", ("blobstore", "io-0.2.1")),
    "sockets-py": ("wasi:cli/command@0.2.12", ()),
    "sockets-http-py": ("wasmfleet:sockets-http/guest", ("sockets-http",)),
    "blobstore-splice-py": ("wasmfleet:tests/blobstore-guest", ("blobstore",)),
}

SOURCE_DIRS: dict[str, str | Path] = {
    "blobstore-splice-py": "blobstore-py",
    "service-example": REPO / "examples" / "service" / "service",
    "service-example-front": REPO / "examples" / "service" / "front",
}
"""Guests built from another guest's sources (a different WIT, the same app), or from an example's."""
"""componentize-py guests: (world, WIT packages beyond WASI 0.2 their world uses)."""


def cache_dir() -> Path:
    return Path(os.environ.get("WASMFLEET_COMPONENT_CACHE", REPO / ".cache" / "components"))


def _tool(name: str) -> str:
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name} not found (install the test extras: pip install -e '.[test]')")
    return found


WASI_PACKAGES = ("cli", "clocks", "filesystem", "http", "io", "random", "sockets")


def _sources_hash(name: str) -> str:
    """Hash of what the guest is built from (WAT worlds also use world.wit and the acme package)."""
    h = hashlib.sha256(name.encode())
    roots = [HERE / SOURCE_DIRS.get(name, name), *(WIT / "deps" / p for p in WASI_PACKAGES)]
    if name.endswith("-wat"):
        roots += [WIT / "world.wit", WIT / "deps" / "acme-widgets", WIT / "deps" / "wasmcloud-messaging",
                  WIT / "deps" / "keyvalue"]
    if name in LINK_WAT:
        roots += [WIT / "deps" / "linktest", WIT / "deps" / "linktest-next"]
    if name == "text-front-js":
        roots += [HERE / "hello-js" / "wit", *(WIT / "deps" / p for p in DEMO_DEPS)]
    if name in PY_WORLDS and PY_WORLDS[name][1]:
        # Every top-level .wit file: they are one package (wasmfleet:tests), parsed as a whole.
        roots += [*sorted(WIT.glob("*.wit")), *(WIT / "deps" / p for p in PY_WORLDS[name][1])]
    if name.endswith("-c"):
        roots += [_conformance_build().adapter()]  # the adapter is part of what a C guest is made of
    for root in roots:
        if root.is_file():
            h.update(root.read_bytes())
            continue
        for path in sorted(p for p in root.rglob("*") if p.is_file() and "node_modules" not in p.parts):
            h.update(str(path.relative_to(HERE if path.is_relative_to(HERE) else REPO)).encode())
            h.update(path.read_bytes())
    return h.hexdigest()[:16]


def _run(cmd: list[str], cwd: Path | None = None) -> None:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")


def _build_wat(src: Path, out: Path, work: Path) -> None:
    wt = _tool("wasm-tools")
    _run([wt, "parse", str(src / "guest.wat"), "-o", str(work / "core.wasm")])
    world = (src / "world").read_text().strip()
    _run([wt, "component", "embed", str(WIT), "-w", world, str(work / "core.wasm"),
          "-o", str(work / "embedded.wasm")])
    _run([wt, "component", "new", str(work / "embedded.wasm"), "-o", str(out)])


def _build_py(src: Path, out: Path, work: Path, wit: Path = WIT, world: str = "") -> None:
    # Without VIRTUAL_ENV, componentize-py bundles only the app directory (not the venv).
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    proc = subprocess.run(
        [_tool("componentize-py"), "-d", str(wit), "-w", world or PY_WORLDS[src.name][0], "componentize", "app",
         "-p", str(src), "-o", str(out)], cwd=work, capture_output=True, text=True, env=env,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"componentize-py failed:\n{proc.stdout}\n{proc.stderr}")


DEMO_DEPS = ("demo", "config")
"""WIT packages text-front-js needs beyond hello-js's WASI 0.2.10."""
def _build_py_one_io(src: Path, out: Path, work: Path) -> None:
    """blobstore-py with the blobstore WIT on wasi:io@0.2.12 (the HTTP side's): the guest can then
    splice between HTTP bodies and object streams (the vendored WIT itself stays as upstream has it)."""
    wit = work / "wit"
    shutil.copytree(WIT, wit)
    shutil.rmtree(wit / "deps" / "io-0.2.1")
    package = wit / "deps" / "blobstore" / "package.wit"
    package.write_text(re.sub(r"(wasi:io/[a-z-]+)@0\.2\.1\b", r"\1@0.2.12", package.read_text()))
    _build_py(HERE / SOURCE_DIRS[src.name], out, work, wit, PY_WORLDS[src.name][0])


def _build_example_py(src: Path, out: Path, work: Path) -> None:
    """An examples/service guest from its app directory there: a command on the tests' WIT, or, with
    its own world.wit, that world next to a copy of the WASI packages (its WIT stays in the example)."""
    src = Path(SOURCE_DIRS[src.name])
    if not (src / "world.wit").exists():
        _build_py(src, out, work, WIT, "wasi:cli/command@0.2.12")
        return
    wit = work / "wit"
    for package in WASI_PACKAGES:
        shutil.copytree(WIT / "deps" / package, wit / "deps" / package)
    shutil.copy(src / "world.wit", wit / "world.wit")
    _build_py(src, out, work, wit, "wasmfleet:service-example/front")


def componentize_js_bin() -> Path:
    return REPO / ".cache" / "componentize-js" / "node_modules" / ".bin" / "componentize-js"


def _build_js(src: Path, out: Path, work: Path) -> None:
    tool = componentize_js_bin()
    if not tool.exists():
        raise FileNotFoundError(f"{tool} missing: run `bash scripts/deps.d/components.sh`")
    # StarlingMonkey's fetch handler exports incoming-handler@0.2.10: use the guest's own WIT.
    _run([str(tool), str(src / "app.js"), "-w", str(src / "wit"), "-n", "js-guest", "-o", str(out)], cwd=work)


def _build_js_with_demo(src: Path, out: Path, work: Path) -> None:
    """A JS guest importing wasmfleet:demo: hello-js's WIT (WASI 0.2.10) plus the demo package."""
    tool = componentize_js_bin()
    if not tool.exists():
        raise FileNotFoundError(f"{tool} missing: run `bash scripts/deps.d/components.sh`")
    wit = work / "wit"
    shutil.copytree(HERE / "hello-js" / "wit" / "deps", wit / "deps")
    for package in DEMO_DEPS:  # the demo package's world text-library uses wasi:config
        shutil.copytree(WIT / "deps" / package, wit / "deps" / package)
    shutil.copy(src / "world.wit", wit / "world.wit")
    _run([str(tool), str(src / "app.js"), "-w", str(wit), "-n", "text-front", "-o", str(out)], cwd=work)


def _conformance_build() -> Any:
    """tests/conformance/build_programs.py (tests/ is not a package): its toolchain checks and tools."""
    spec = importlib.util.spec_from_file_location(
        "wasmfleet_conformance_build", HERE.parent / "conformance" / "build_programs.py")
    assert spec is not None and spec.loader is not None
    module = sys.modules.get(spec.name)
    if module is None:
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    return module


def _build_c(src: Path, out: Path, work: Path) -> None:
    """A C command: clang for wasm32-wasi (Debian's wasi-libc), then the preview1 command adapter."""
    conformance = _conformance_build()
    if not Path("/usr/lib/wasm32-wasi/libc.a").exists():
        raise conformance.ToolchainMissing(f"wasi-libc is not installed: {conformance.SETUP_HINT}")
    core = work / "core.wasm"
    sources = sorted(str(p) for p in src.glob("*.c"))
    _run([conformance._tool("clang"), "--target=wasm32-wasi", "--sysroot=/usr", "-O2", "-Wall",
          "-o", str(core), *sources])
    _run([_tool("wasm-tools"), "component", "new", str(core),
          "--adapt", f"wasi_snapshot_preview1={conformance.adapter()}", "-o", str(out)])


_BUILDERS = {
    "hello-wat": _build_wat,
    "print-wat": _build_wat,
    "unknown-import-wat": _build_wat,
    "no-handler-wat": _build_wat,
    "messaging-wat": _build_wat,
    "messaging-ask-wat": _build_wat,
    "no-body-wat": _build_wat,
    "kv-getset-wat": _build_wat,
    "hello-py": _build_py,
    "hello-js": _build_js,
    "config-logging-py": _build_py,
    "greeter-py": _build_py,
    "keyvalue-py": _build_py,
    "text-lib-py": _build_py,
    "text-front-js": _build_js_with_demo,
    **{name: _build_wat for name in LINK_WAT},
    "blobstore-py": _build_py,
    "sockets-py": _build_py,
    "sockets-http-py": _build_py,
    "blobstore-splice-py": _build_py_one_io,
    "keyvalue-js": _build_js,
    "service-c": _build_c,
    "service-example": _build_example_py,
    "service-example-front": _build_example_py,
}


def build_component(name: str) -> Path:
    """Returns the path of the built component `name`, building it if its sources changed."""
    if name not in _BUILDERS:
        raise KeyError(f"unknown guest {name!r}; known: {', '.join(GUESTS)}")
    out_dir = cache_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"{name}-{_sources_hash(name)}.wasm"
    if out.exists():
        return out
    with open(out_dir / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if out.exists():
            return out
        with tempfile.TemporaryDirectory(prefix=f"build-{name}-") as tmp:
            partial = Path(tmp) / "out.wasm"
            _BUILDERS[name](HERE / name, partial, Path(tmp))
            os.replace(partial, out) if partial.stat().st_dev == out_dir.stat().st_dev else shutil.move(
                partial, out
            )
    return out


if __name__ == "__main__":
    for arg in sys.argv[1:] or ["hello-wat"]:
        print(build_component(arg))
