"""Pure pieces of the API server: label/field selector parsing and matching, the printer-column
JSONPath subset, human ages, FieldsV1 round trips and server-side apply merging/removal."""

from __future__ import annotations

import datetime as dt

import pytest

from wasmfleet.apiserver import errors, managedfields, selectors, tables


@pytest.mark.parametrize(("selector", "labels", "expected"), [
    ("a=b", {"a": "b"}, True),
    ("a==b", {"a": "c"}, False),
    ("a!=b", {}, True),
    ("a in (x, y)", {"a": "y"}, True),
    ("a notin (x)", {"a": "x"}, False),
    ("a", {"a": ""}, True),
    ("!a", {"a": ""}, False),
    ("a=b,c in (d)", {"a": "b", "c": "d"}, True),
    ("example.com/tier=web", {"example.com/tier": "web"}, True),
])
def test_label_selectors(selector: str, labels: dict[str, str], expected: bool) -> None:
    match = selectors.matcher(selector, None)
    assert match is not None and match({"metadata": {"labels": labels}}) is expected


def test_bad_selectors_are_400() -> None:
    for bad in ("a in (b", "=b", "a b"):
        with pytest.raises(errors.ApiError) as caught:
            selectors.matcher(bad, None)
        assert caught.value.code == 400


def test_field_selectors_on_any_dotted_field() -> None:
    match = selectors.matcher(None, "metadata.name=x,involvedObject.kind!=Pod")
    assert match is not None
    assert match({"metadata": {"name": "x"}, "involvedObject": {"kind": "Host"}})
    assert not match({"metadata": {"name": "x"}, "involvedObject": {"kind": "Pod"}})


def test_label_selector_objects_to_strings() -> None:
    sel = {"matchLabels": {"app": "a"}, "matchExpressions": [{"key": "t", "operator": "In", "values": ["x", "y"]},
                                                             {"key": "z", "operator": "DoesNotExist"}]}
    assert selectors.selector_to_string(sel) == "app=a,t in (x,y),!z"


def test_jsonpath_subset_used_by_printer_columns() -> None:
    obj = {"status": {"conditions": [{"type": "Sync", "status": "False"}, {"type": "Ready", "status": "True"}]},
           "metadata": {"labels": {"hostgroup": "edge"}}, "spec": {"list": [1, 2]}}
    assert tables.jsonpath(obj, '.status.conditions[?(@.type=="Ready")].status') == ["True"]
    assert tables.jsonpath(obj, ".metadata.labels.hostgroup") == ["edge"]
    assert tables.jsonpath(obj, ".spec.list[1]") == [2]
    assert tables.jsonpath(obj, ".spec.list[*]") == [1, 2]
    assert tables.jsonpath(obj, ".spec.missing") == []


def test_human_ages_match_kubectl() -> None:
    now = dt.datetime(2026, 1, 10, tzinfo=dt.UTC)
    stamp = lambda **kw: (now - dt.timedelta(**kw)).strftime("%Y-%m-%dT%H:%M:%SZ")  # noqa: E731
    assert tables.human_age(stamp(seconds=5), now) == "5s"
    assert tables.human_age(stamp(minutes=5, seconds=3), now) == "5m3s"
    assert tables.human_age(stamp(hours=3), now) == "3h"
    assert tables.human_age(stamp(days=3, hours=2), now) == "3d2h"
    assert tables.human_age("garbage", now) == "<unknown>"


def test_fields_v1_round_trip() -> None:
    paths = {("spec", "replicas"), ("metadata", "labels", "app"), ("spec", "template", "image")}
    assert managedfields.from_fields_v1(managedfields.to_fields_v1(paths)) == paths


def test_apply_merges_maps_and_removes_fields_no_longer_applied() -> None:
    first = managedfields.apply(None, {"metadata": {"name": "x", "labels": {"a": "1"}}, "spec": {"k": 1, "j": 2}},
                                "me", "v1", "t", force=False, include_status=True)
    current = dict(first, spec=dict(first["spec"], other=3))  # another writer added spec.other
    second = managedfields.apply(current, {"metadata": {"name": "x"}, "spec": {"k": 5}}, "me", "v1", "t",
                                 force=False, include_status=True)
    assert second["spec"] == {"k": 5, "other": 3}
    assert "labels" not in second["metadata"] or second["metadata"]["labels"] == {}
