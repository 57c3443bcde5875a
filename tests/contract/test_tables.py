"""kubectl's table protocol: Accept as=Table returns a meta.k8s.io/v1 Table whose columns are the CRD's
additionalPrinterColumns (Name first, declared types kept, dates as ages), for lists and single objects; Host
shows HOSTID/HOSTGROUP/READY/AGE."""

from __future__ import annotations

from contract_client import Kube
from contract_support import WIDGETS, widget

TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"


def test_list_as_table_uses_printer_columns(kube: Kube, ns: str) -> None:
    kube.post(f"{WIDGETS}/namespaces/{ns}/widgets", widget("t1", size=7))
    kube.patch(f"{WIDGETS}/namespaces/{ns}/widgets/t1/status",
               {"status": {"conditions": [{"type": "Ready", "status": "True"}]}})
    got = kube.get(f"{WIDGETS}/namespaces/{ns}/widgets", accept=TABLE)
    assert got.status == 200 and got.body["kind"] == "Table"
    cols = [c["name"] for c in got.body["columnDefinitions"]]
    assert cols == ["Name", "Size", "Ready", "Age"]
    # A CRD's columns keep their declared types; with no description of its own a column describes its path.
    defs = {c["name"]: c for c in got.body["columnDefinitions"]}
    assert [defs[c]["type"] for c in cols] == ["string", "integer", "string", "date"]
    assert defs["Size"]["description"] == "Custom resource definition column (in JSONPath format): .spec.size"
    (row,) = got.body["rows"]
    assert row["cells"][:3] == ["t1", 7, "True"]
    assert isinstance(row["cells"][3], str) and row["cells"][3].endswith("s")   # an age such as "3s"
    assert row["object"]["metadata"]["name"] == "t1"
    single = kube.get(f"{WIDGETS}/namespaces/{ns}/widgets/t1", accept=TABLE)
    assert single.body["kind"] == "Table" and single.body["rows"][0]["cells"][0] == "t1"


def test_hosts_table_shows_hostid_hostgroup_ready_age(kube: Kube, ns: str) -> None:
    got = kube.get(f"/apis/runtime.wasmcloud.dev/v1alpha1/namespaces/{ns}/hosts", accept=TABLE)
    assert got.status == 200
    cols = [c["name"].upper() for c in got.body["columnDefinitions"]]
    for expected in ("HOSTID", "HOSTGROUP", "READY", "AGE"):
        assert expected in cols
