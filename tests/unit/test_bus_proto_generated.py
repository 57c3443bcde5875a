"""The generated protobuf code committed under src/wasmfleet/bus/pb is what proto/ generates now.

Checks: running scripts/gen-proto (protoc from grpcio-tools, stubs from mypy-protobuf, both test
extras) into a temporary directory gives the same files with the same bytes as the committed tree,
so a .proto edited without regenerating fails here and names the files that differ.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
COMMITTED = REPO / "src" / "wasmfleet" / "bus" / "pb"


def _tree(root: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    }


def test_committed_generated_code_matches_a_fresh_generation(tmp_path: Path) -> None:
    out = tmp_path / "pb"
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "gen-proto"), "--out", str(out)],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    fresh, committed = _tree(out), _tree(COMMITTED)
    assert fresh, "gen-proto wrote nothing"
    assert sorted(fresh) == sorted(committed), "files differ: run scripts/gen-proto and commit"
    stale = [name for name in fresh if fresh[name] != committed[name]]
    assert not stale, f"out of date (run scripts/gen-proto and commit): {stale}"
