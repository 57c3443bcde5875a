"""Examples built by their own build.sh (componentize-py), as a user builds them: one place that
caches the output under the test components' cache, keyed by a hash of the example's sources."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
from tests.components.build import cache_dir  # noqa: E402


def built_example(example: Path, marker: str) -> Path:
    """The output directory of `example/build.sh` (built now unless cached); `marker` is a file the
    build writes last, e.g. "pastebin.wasm"."""
    digest = hashlib.sha256()
    for path in sorted(p for p in example.rglob("*") if p.is_file() and p.suffix != ".wasm"):
        digest.update(str(path.relative_to(example)).encode())
        digest.update(path.read_bytes())
    out = cache_dir() / f"{example.name}-example-{digest.hexdigest()[:16]}"
    if not (out / marker).exists():
        env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
        tmp = out.with_suffix(".tmp")
        subprocess.run(["sh", str(example / "build.sh"), str(tmp)], check=True, env=env, capture_output=True)
        tmp.rename(out)
    return out
