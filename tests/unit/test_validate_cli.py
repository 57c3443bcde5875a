"""`wasmfleet validate` and `wasmfleet crds` as a user runs them: exit codes and one-line errors with
file, document index, object and field path; never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "wasmfleet", *args], capture_output=True, text=True, check=False)


def test_examples_are_valid() -> None:
    result = run("validate", "-f", str(EXAMPLES))
    assert result.returncode == 0, result.stderr
    assert "valid" in result.stdout


def test_errors_name_file_document_object_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ok}\n---\n"
        "apiVersion: runtime.wasmcloud.dev/v1alpha1\nkind: Workload\nmetadata: {name: w}\n"
        "spec:\n  components: [{name: a, image: b}]\n  hostInterfaces:\n"
        "    - {namespace: wasi, package: keyvalue, interfaces: [store]}\n"
        "    - {namespace: wasi, package: keyvalue, interfaces: [store]}\n"
    )
    result = run("validate", "-f", str(bad))
    assert result.returncode == 1
    assert f"{bad} [document 1]: Workload/w: spec.hostInterfaces:" in result.stderr
    assert "Traceback" not in result.stderr


def test_malformed_yaml_unknown_kind_and_duplicates(tmp_path: Path) -> None:
    (tmp_path / "broken.yaml").write_text("a: [\n")
    (tmp_path / "kinds.yaml").write_text(
        "apiVersion: runtime.wasmcloud.dev/v1alpha1\nkind: Gizmo\nmetadata: {name: g}\n---\n"
        "apiVersion: runtime.wasmcloud.dev/v2\nkind: Workload\nmetadata: {name: g}\n---\n"
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: dup}\n---\n"
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: dup}\n"
    )
    (tmp_path / "num.json").write_text('{"apiVersion": 1')
    result = run("validate", "-f", str(tmp_path))
    assert result.returncode == 1
    err = result.stderr
    assert f"{tmp_path / 'broken.yaml'}:2:1: invalid YAML" in err
    assert "kind: unknown kind 'Gizmo'" in err
    assert "apiVersion: unsupported version 'runtime.wasmcloud.dev/v2'" in err
    assert "[document 3]: ConfigMap/dup: metadata.name: duplicate of" in err
    assert "num.json:1:17: invalid JSON" in err
    assert "Traceback" not in err


def test_missing_path_is_one_line() -> None:
    result = run("validate", "-f", "/no/such/place")
    assert result.returncode == 1
    assert result.stderr.strip() == "error: /no/such/place: no such file or directory"


def test_crds_prints_five_definitions() -> None:
    result = run("crds")
    assert result.returncode == 0
    assert result.stdout.count("kind: CustomResourceDefinition") == 5
