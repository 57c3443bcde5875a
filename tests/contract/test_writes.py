"""Write details clients rely on: a custom resource's PUT needs a resourceVersion (422 without), a no-op
write keeps the resourceVersion, dryRun=All answers without storing, deletecollection honours a label
selector, an unknown field without fieldValidation is dropped with a Warning header."""

from __future__ import annotations

from contract_client import Kube
from contract_support import WIDGETS, wait_until, widget


def test_put_of_a_custom_resource_needs_a_resource_version(kube: Kube, ns: str) -> None:
    path = f"{WIDGETS}/namespaces/{ns}/widgets/w"
    kube.post(f"{WIDGETS}/namespaces/{ns}/widgets", widget("w"))
    unconditional = widget("w", size=5)
    got = kube.put(path, unconditional)
    assert got.status == 422 and got.body["reason"] == "Invalid"
    assert "metadata.resourceVersion" in {c["field"] for c in got.body["details"]["causes"]}
    assert kube.get(path).body["spec"]["size"] == 3


def test_a_no_op_write_keeps_the_resource_version(kube: Kube, ns: str) -> None:
    path = f"{WIDGETS}/namespaces/{ns}/widgets/w"
    created = kube.post(f"{WIDGETS}/namespaces/{ns}/widgets", widget("w", color="red")).body
    rv = created["metadata"]["resourceVersion"]
    same = kube.patch(path, {"spec": {"color": "red"}})
    assert same.status == 200 and same.body["metadata"]["resourceVersion"] == rv
    put = kube.put(path, kube.get(path).body)
    assert put.status == 200 and put.body["metadata"]["resourceVersion"] == rv
    assert put.body["metadata"]["generation"] == 1


def test_dry_run_answers_without_storing(kube: Kube, ns: str) -> None:
    coll = f"{WIDGETS}/namespaces/{ns}/widgets"
    created = kube.post(coll, widget("dry"), query={"dryRun": "All"})
    assert created.status == 201 and created.body["metadata"]["name"] == "dry"
    assert kube.get(f"{coll}/dry").status == 404
    kube.post(coll, widget("real"))
    patched = kube.patch(f"{coll}/real", {"spec": {"size": 9}}, query={"dryRun": "All"})
    assert patched.status == 200 and patched.body["spec"]["size"] == 9
    assert kube.get(f"{coll}/real").body["spec"]["size"] == 3
    assert kube.delete(f"{coll}/real", query={"dryRun": "All"}).status in (200, 202)
    assert kube.get(f"{coll}/real").status == 200


def test_deletecollection_honours_the_label_selector(kube: Kube, ns: str) -> None:
    coll = f"{WIDGETS}/namespaces/{ns}/widgets"
    for name, team in (("a1", "a"), ("a2", "a"), ("b1", "b")):
        body = widget(name)
        body["metadata"]["labels"] = {"team": team}
        assert kube.post(coll, body).status == 201
    got = kube.delete(coll, query={"labelSelector": "team=a"})
    assert got.status == 200, got.body

    def remaining() -> list[str] | None:
        names = sorted(i["metadata"]["name"] for i in kube.get(coll).body["items"])
        return names if names == ["b1"] else None

    wait_until(remaining, 30, 0.1)


def test_unknown_field_is_dropped_with_a_warning(kube: Kube, ns: str) -> None:
    created = kube.post(f"{WIDGETS}/namespaces/{ns}/widgets", widget("w", bogus="x"))
    assert created.status == 201 and "bogus" not in created.body["spec"]
    warning = {k.lower(): v for k, v in created.headers.items()}.get("warning", "")
    assert "bogus" in warning, created.headers
