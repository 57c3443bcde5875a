"""Fixtures of the API contract suite.

By default the suite starts the embedded server (`wasmfleet apiserver`) once per session. Set
WASMFLEET_CONTRACT_KUBECONFIG=/path/to/kubeconfig to run the very same tests against a real cluster
(the suite then installs its test CRD and the wasmfleet CRDs from deploy/crds, updating older ones).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from contract_client import Kube
from contract_support import ROOT, WIDGET_CRD, _install_crd

from wasmfleet.testing.apiserver import running_apiserver


@pytest.fixture(scope="session")
def kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kube]:
    external = os.environ.get("WASMFLEET_CONTRACT_KUBECONFIG")
    if external:
        client = Kube(Path(external))
        for path in sorted((ROOT / "deploy" / "crds").glob("*.yaml")):
            _install_crd(client, yaml.safe_load(path.read_text()))
        _install_crd(client, WIDGET_CRD)
        yield client
        return
    with running_apiserver(tmp_path_factory.mktemp("contract-apiserver")) as kubeconfig:
        client = Kube(kubeconfig)
        _install_crd(client, WIDGET_CRD)
        yield client


@pytest.fixture
def ns(kube: Kube) -> Iterator[str]:
    name = f"ct-{secrets.token_hex(4)}"
    created = kube.post("/api/v1/namespaces", {"metadata": {"name": name}})
    assert created.status == 201, created.body
    yield name
    kube.delete(f"/api/v1/namespaces/{name}")
