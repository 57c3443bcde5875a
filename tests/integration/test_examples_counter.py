"""The counter example stays runnable from a fresh checkout.

Checks:
- the committed examples/counter/counter.wasm is exactly what build.sh makes from counter.wat;
- the example's manifest validates offline, and `file:counter.wasm` resolves to the committed component;
- `wasmfleet serve` runs it: each request increments both stores (in memory: 1, 2, 3).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

from wasmfleet.cli import resources_api

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "counter"


def test_committed_component_matches_its_source(tmp_path: Path) -> None:
    copy = tmp_path / "counter"
    shutil.copytree(EXAMPLE, copy)
    (copy / "counter.wasm").unlink()
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    subprocess.run(["sh", str(copy / "build.sh")], check=True, env=env, capture_output=True)
    assert (copy / "counter.wasm").read_bytes() == (EXAMPLE / "counter.wasm").read_bytes()


def test_manifest_validates_and_its_image_resolves_to_the_component() -> None:
    manifest = EXAMPLE / "deployment.yaml"
    proc = subprocess.run(
        [sys.executable, "-c", "from wasmfleet.cli.main import main; main()", "validate", "-f", str(manifest)],
        capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stderr
    [(_, obj)] = resources_api.load_manifests([str(manifest)])
    image = obj["spec"]["template"]["spec"]["components"][0]["image"]
    assert image == f"file://{EXAMPLE / 'counter.wasm'}"


def test_serve_counts() -> None:
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "wasmfleet"), "serve", str(EXAMPLE / "counter.wasm"),
         "--addr", "127.0.0.1:0", "--cache-dir", str(REPO / ".cache" / "runtime-test-components")],
        stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        port = int(line.split("http://127.0.0.1:")[1].split("/")[0])
        for n in (1, 2, 3):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=60) as response:
                assert response.read() == f"cache={n} sessions={n}\n".encode()
    finally:
        proc.terminate()
        proc.wait(10)
        assert proc.stderr is not None
        proc.stderr.close()
