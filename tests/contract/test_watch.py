"""Watch: events after a resourceVersion only, ADDED/MODIFIED/DELETED in order without gaps, bookmarks
when allowed, timeoutSeconds ends the stream, a too-old resourceVersion is answered with 410 Gone."""

from __future__ import annotations

import threading
import time

from contract_client import Kube
from contract_support import WIDGETS, widget


def test_watch_from_resource_version_streams_changes_in_order(kube: Kube, ns: str) -> None:
    coll = f"{WIDGETS}/namespaces/{ns}/widgets"
    kube.post(coll, widget("before"))
    start_rv = kube.get(coll).body["metadata"]["resourceVersion"]
    events: list[tuple[str, str, int]] = []

    def consume() -> None:
        for ev in kube.watch(coll, {"resourceVersion": start_rv, "timeoutSeconds": "5"}, timeout_s=10):
            events.append((ev["type"], ev["object"]["metadata"]["name"],
                           int(ev["object"]["metadata"]["resourceVersion"])))
            if len(events) == 4:
                return

    reader = threading.Thread(target=consume)
    reader.start()
    time.sleep(0.3)
    kube.post(coll, widget("w"))
    kube.patch(f"{coll}/w", {"spec": {"size": 4}})
    kube.patch(f"{coll}/w", {"spec": {"size": 5}})
    kube.delete(f"{coll}/w")
    reader.join(15)
    assert [(t, n) for t, n, _ in events] == [("ADDED", "w"), ("MODIFIED", "w"), ("MODIFIED", "w"), ("DELETED", "w")]
    rvs = [rv for _, _, rv in events]
    assert rvs == sorted(rvs) and rvs[0] > int(start_rv)


def test_watch_resumes_with_the_events_missed(kube: Kube, ns: str) -> None:
    coll = f"{WIDGETS}/namespaces/{ns}/widgets"
    rv = kube.post(coll, widget("a")).body["metadata"]["resourceVersion"]
    kube.post(coll, widget("b"))
    kube.patch(f"{coll}/a", {"spec": {"size": 2}})
    seen = []
    for ev in kube.watch(coll, {"resourceVersion": rv, "timeoutSeconds": "2"}, timeout_s=10):
        seen.append((ev["type"], ev["object"]["metadata"]["name"]))
        if len(seen) == 2:
            break
    assert seen == [("ADDED", "b"), ("MODIFIED", "a")]


def test_watch_without_resource_version_starts_with_current_state(kube: Kube, ns: str) -> None:
    coll = f"{WIDGETS}/namespaces/{ns}/widgets"
    kube.post(coll, widget("x"))
    first = next(iter(kube.watch(coll, {"timeoutSeconds": "2"}, timeout_s=10)))
    assert first["type"] == "ADDED" and first["object"]["metadata"]["name"] == "x"


def test_timeout_seconds_ends_the_stream(kube: Kube, ns: str) -> None:
    coll = f"{WIDGETS}/namespaces/{ns}/widgets"
    rv = kube.get(coll).body["metadata"]["resourceVersion"]
    started = time.monotonic()
    events = [ev for ev in kube.watch(coll, {"resourceVersion": rv, "timeoutSeconds": "1",
                                              "allowWatchBookmarks": "true"}, timeout_s=20)]
    assert time.monotonic() - started < 15
    assert all(ev["type"] == "BOOKMARK" for ev in events)


def test_too_old_resource_version_is_410_gone(kube: Kube, ns: str) -> None:
    coll = f"{WIDGETS}/namespaces/{ns}/widgets"
    events = list(kube.watch(coll, {"resourceVersion": "1", "timeoutSeconds": "5"}, timeout_s=10))
    # kube-apiserver answers 200 and one ERROR event carrying the 410 Status (clients relist on it).
    assert events and events[0]["type"] == "ERROR"
    assert events[0]["object"]["code"] == 410 and events[0]["object"]["reason"] in ("Expired", "Gone")


def test_selector_watch_sees_objects_enter_and_leave(kube: Kube, ns: str) -> None:
    coll = f"{WIDGETS}/namespaces/{ns}/widgets"
    body = widget("s")
    body["metadata"]["labels"] = {"team": "a"}
    rv = kube.post(coll, body).body["metadata"]["resourceVersion"]
    kube.patch(f"{coll}/s", {"metadata": {"labels": {"team": "b"}}})   # leaves team=a
    kube.patch(f"{coll}/s", {"spec": {"size": 4}})                      # invisible to team=a
    kube.patch(f"{coll}/s", {"metadata": {"labels": {"team": "a"}}})   # enters again
    seen = []
    for ev in kube.watch(coll, {"resourceVersion": rv, "labelSelector": "team=a", "timeoutSeconds": "2"},
                         timeout_s=10):
        seen.append(ev["type"])
        if len(seen) == 2:
            break
    assert seen == ["DELETED", "ADDED"]
