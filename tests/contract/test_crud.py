"""Create / list / get / update / delete: system fields, duplicates, generateName, label and field
selectors, List kind and numeric resourceVersion, limit/continue pagination, optimistic concurrency."""

from __future__ import annotations

from contract_client import Kube
from contract_support import GROUP, WIDGETS, widget


def test_create_sets_system_fields_and_rejects_duplicates(kube: Kube, ns: str) -> None:
    created = kube.post(f"{WIDGETS}/namespaces/{ns}/widgets", widget("w1"))
    assert created.status == 201, created.body
    meta = created.body["metadata"]
    assert meta["uid"] and meta["creationTimestamp"] and meta["namespace"] == ns
    assert meta["resourceVersion"] and meta["generation"] == 1
    dup = kube.post(f"{WIDGETS}/namespaces/{ns}/widgets", widget("w1"))
    assert dup.status == 409 and dup.body["reason"] == "AlreadyExists"


def test_generate_name_is_honoured(kube: Kube, ns: str) -> None:
    body = widget("")
    body["metadata"] = {"generateName": "gen-"}
    created = kube.post(f"{WIDGETS}/namespaces/{ns}/widgets", body)
    assert created.status == 201
    name = created.body["metadata"]["name"]
    assert name.startswith("gen-") and len(name) > len("gen-")


def test_list_with_label_and_field_selectors(kube: Kube, ns: str) -> None:
    labels = {"a": {"tier": "web", "env": "prod"}, "b": {"tier": "db", "env": "prod"}, "c": {"tier": "web"}}
    for name, lab in labels.items():
        body = widget(name)
        body["metadata"]["labels"] = lab
        assert kube.post(f"{WIDGETS}/namespaces/{ns}/widgets", body).status == 201

    def names(**query: str) -> list[str]:
        got = kube.get(f"{WIDGETS}/namespaces/{ns}/widgets", query=query)
        assert got.status == 200, got.body
        assert got.body["kind"] == "WidgetList" and got.body["apiVersion"] == f"{GROUP}/v1"
        assert got.body["metadata"]["resourceVersion"].isdigit()
        return sorted(i["metadata"]["name"] for i in got.body["items"])

    assert names(labelSelector="tier=web") == ["a", "c"]
    assert names(labelSelector="tier==web") == ["a", "c"]
    assert names(labelSelector="tier!=web") == ["b"]
    assert names(labelSelector="tier in (db,cache)") == ["b"]
    assert names(labelSelector="tier notin (db)") == ["a", "c"]
    assert names(labelSelector="env") == ["a", "b"]
    assert names(labelSelector="!env") == ["c"]
    assert names(labelSelector="tier=web,env=prod") == ["a"]
    assert names(fieldSelector="metadata.name=b") == ["b"]
    assert names(fieldSelector=f"metadata.namespace={ns}") == ["a", "b", "c"]
    assert names(fieldSelector="metadata.name!=b") == ["a", "c"]


def test_list_pagination_with_limit_and_continue(kube: Kube, ns: str) -> None:
    for i in range(5):
        assert kube.post(f"{WIDGETS}/namespaces/{ns}/widgets", widget(f"p{i}")).status == 201
    seen: list[str] = []
    token = None
    pages = 0
    while True:
        query = {"limit": "2"}
        if token:
            query["continue"] = token
        page = kube.get(f"{WIDGETS}/namespaces/{ns}/widgets", query=query).body
        assert len(page["items"]) <= 2
        seen += [i["metadata"]["name"] for i in page["items"]]
        pages += 1
        token = page["metadata"].get("continue")
        if not token:
            break
    # A server may return fewer than `limit` items on a page and still continue; every item comes once.
    assert sorted(seen) == [f"p{i}" for i in range(5)] and pages >= 3


def test_get_put_delete_with_optimistic_concurrency(kube: Kube, ns: str) -> None:
    path = f"{WIDGETS}/namespaces/{ns}/widgets/w"
    assert kube.get(path).status == 404
    first = kube.post(f"{WIDGETS}/namespaces/{ns}/widgets", widget("w")).body
    fresh = kube.get(path).body
    fresh["spec"]["size"] = 5
    updated = kube.put(path, fresh)
    assert updated.status == 200 and updated.body["spec"]["size"] == 5
    assert updated.body["metadata"]["resourceVersion"] != first["metadata"]["resourceVersion"]
    assert updated.body["metadata"]["generation"] == 2
    stale = dict(first, spec={"size": 7})
    conflict = kube.put(path, stale)
    assert conflict.status == 409 and conflict.body["reason"] == "Conflict"
    assert kube.get(path).body["spec"]["size"] == 5
    deleted = kube.delete(path)
    assert deleted.status == 200
    assert kube.get(path).status == 404
    assert kube.delete(path).status == 404


def test_namespaced_create_needs_an_existing_namespace(kube: Kube) -> None:
    got = kube.post(f"{WIDGETS}/namespaces/does-not-exist-ct/widgets", widget("w"))
    assert got.status == 404
