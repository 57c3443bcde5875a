"""The hello example stays runnable from a fresh checkout.

Checks:
- the committed examples/hello/hello.wasm is exactly what build.sh makes from hello.wat (no stale binary);
- the example's manifest validates offline, and `file:hello.wasm` resolves to the committed component.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from wasmfleet.cli import resources_api

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "hello"


def test_committed_component_matches_its_source(tmp_path: Path) -> None:
    copy = tmp_path / "hello"
    shutil.copytree(EXAMPLE, copy)
    (copy / "hello.wasm").unlink()
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    subprocess.run(["sh", str(copy / "build.sh")], check=True, env=env, capture_output=True)
    assert (copy / "hello.wasm").read_bytes() == (EXAMPLE / "hello.wasm").read_bytes()


def test_manifest_validates_and_its_image_resolves_to_the_component() -> None:
    manifest = EXAMPLE / "deployment.yaml"
    proc = subprocess.run(
        [sys.executable, "-c", "from wasmfleet.cli.main import main; main()", "validate", "-f", str(manifest)],
        capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stderr
    [(_, obj)] = resources_api.load_manifests([str(manifest)])
    image = obj["spec"]["template"]["spec"]["components"][0]["image"]
    assert image == f"file://{EXAMPLE / 'hello.wasm'}"
