"""Authentication and bad input: wrong or missing token -> 401, invalid JSON -> 400, unknown resource ->
404, unsupported verb -> 405, body over 3 MiB -> 413, unsupported media type -> 415; never a 500."""

from __future__ import annotations

from contract_client import Kube
from contract_support import WIDGETS


def test_wrong_or_missing_token_is_rejected(kube: Kube) -> None:
    assert kube.with_token("not-the-token").get("/api/v1/namespaces").status == 401
    # Without credentials: 401 (a real cluster with anonymous auth enabled answers 403 instead).
    assert kube.without_auth().get("/api/v1/namespaces").status in (401, 403)


def test_invalid_json_is_400(kube: Kube, ns: str) -> None:
    got = kube.post(f"{WIDGETS}/namespaces/{ns}/widgets", None, raw=b'{"apiVersion": ')
    assert got.status == 400 and got.body["kind"] == "Status"


def test_unknown_resource_is_404_and_unsupported_verb_405(kube: Kube, ns: str) -> None:
    assert kube.get(f"/api/v1/namespaces/{ns}/nonexistents").status == 404
    kube.post(f"/api/v1/namespaces/{ns}/configmaps", {"metadata": {"name": "c"}})
    got = kube.post(f"/api/v1/namespaces/{ns}/configmaps/c", {"metadata": {"name": "c"}})
    assert got.status == 405


def test_oversized_body_is_413(kube: Kube, ns: str) -> None:
    big = {"metadata": {"name": "big"}, "data": {"x": "y" * (3 * 1024 * 1024 + 10)}}
    assert kube.post(f"/api/v1/namespaces/{ns}/configmaps", big).status == 413


def test_unsupported_patch_media_type_is_415(kube: Kube, ns: str) -> None:
    kube.post(f"/api/v1/namespaces/{ns}/configmaps", {"metadata": {"name": "c"}})
    got = kube.patch(f"/api/v1/namespaces/{ns}/configmaps/c", {"data": {}}, ctype="text/plain")
    assert got.status == 415
