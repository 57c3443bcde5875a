"""Shared helpers of the API server interop tests: kubectl runner, endpoint from a kubeconfig."""

from __future__ import annotations

import base64
import os
import ssl
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
KUBECTL = str(Path(sys.executable).parent / "kubectl")


def kubectl(kubeconfig: Path, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, KUBECONFIG=str(kubeconfig), HOME=str(kubeconfig.parent))
    done = subprocess.run([KUBECTL, *args], capture_output=True, text=True, env=env, timeout=timeout, cwd=ROOT)
    if check and done.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
    return done


def endpoint(kubeconfig: Path) -> tuple[str, dict[str, str], ssl.SSLContext]:
    """(server URL, auth headers, TLS context) from a kubeconfig the embedded server wrote."""
    doc = yaml.safe_load(kubeconfig.read_text())
    cluster = doc["clusters"][0]["cluster"]
    ctx = ssl.create_default_context(cadata=base64.b64decode(cluster["certificate-authority-data"]).decode())
    return cluster["server"], {"Authorization": f"Bearer {doc['users'][0]['user']['token']}"}, ctx
