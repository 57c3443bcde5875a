"""Render deploy/chart offline with the Helm v4 SDK (helm-python-sdk) and validate what comes out:
built-in kinds with kubernetes-validate (strict: unknown fields are errors), runtime.wasmcloud.dev
kinds against the openAPIV3Schema of the chart's own CRDs (jsonschema). Shared by the chart tests."""

from __future__ import annotations

import base64
import contextlib
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python as helm
import jsonschema
import kubernetes_validate
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "deploy" / "chart"
KUBE_VERSION = "1.30.0"  # the oldest minor the chart is meant for that kubernetes-validate ships
RELEASE = "wf"
NAMESPACE = "wasmfleet-system"

Obj = dict[str, Any]


def render(values: dict[str, Any] | None = None) -> list[Obj]:
    """Every object the chart renders for an install (NOTES.txt left out)."""
    manifests = helm.Chart.load(str(CHART)).render(values or {}, name=RELEASE, namespace=NAMESPACE, is_install=True)
    objects: list[Obj] = []
    for path, text in sorted(manifests.items()):
        if path.endswith("NOTES.txt"):
            continue
        objects += [doc for doc in yaml.safe_load_all(text) if doc]
    return objects


def crds() -> dict[tuple[str, str], Obj]:
    """(group, kind) -> the chart's CRD."""
    found = {}
    for path in sorted((CHART / "crds").glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        found[(crd["spec"]["group"], crd["spec"]["names"]["kind"])] = crd
    return found


def validate(obj: Obj) -> None:
    """Raise (kubernetes_validate.ValidationError or jsonschema.ValidationError) when `obj` is invalid."""
    group, _, version = obj["apiVersion"].rpartition("/")
    crd = crds().get((group, obj["kind"]))
    if crd is None:
        kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
        return
    (served,) = [v for v in crd["spec"]["versions"] if v["name"] == version]
    jsonschema.validate(obj, served["schema"]["openAPIV3Schema"])


def by_kind(objects: list[Obj], kind: str) -> dict[str, Obj]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def env_of(obj: Obj, container: str | None = None) -> dict[str, str]:
    """Plain-value environment variables of a workload's (first or named) container."""
    containers = obj["spec"]["template"]["spec"]["containers"]
    (chosen,) = [c for c in containers if container is None or c["name"] == container][:1]
    return {e["name"]: e["value"] for e in chosen.get("env", []) if "value" in e}


def write_secret(secret: dict[str, Any], directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for key, value in secret["data"].items():
        (directory / key).write_bytes(base64.b64decode(value))
    return directory


def local_nats_conf(conf: str, tmp: Path, port: int, monitor: int) -> str:
    """The rendered configuration with the pod's paths and fixed ports moved to this machine."""
    return (conf.replace("/etc/nats/tls/", f"{tmp}/nats-tls/")
            .replace("store_dir: /data", f"store_dir: {tmp}/js")
            .replace("/var/run/nats/nats.pid", f"{tmp}/nats.pid")
            .replace("port: 4222", f"port: {port}\nhost: 127.0.0.1")
            .replace("http_port: 8222", f"http: 127.0.0.1:{monitor}"))


@contextlib.contextmanager
def process(argv: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with open(log, "ab") as out:
        proc = subprocess.Popen(argv, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
