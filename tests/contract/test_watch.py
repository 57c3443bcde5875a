"""Watch: events after a resourceVersion only, ADDED/MODIFIED/DELETED in order without gaps (each event's
resourceVersion resumes exactly after it), bookmarks when allowed (one before the timeout), timeoutSeconds
ends the stream, a too-old resourceVersion is answered with 410 Gone, label selector watches see objects enter
and leave, a field selector watch sees only the named object.

resourceVersions are compared only for equality: Kubernetes defines them as opaque strings.
"""

from __future__ import annotations

import threading
import time

from contract_client import Kube
from contract_support import WIDGETS, widget


def test_watch_from_resource_version_streams_changes_in_order(kube: Kube, ns: str) -> None:
    coll = f"{WIDGETS}/namespaces/{ns}/widgets"
    kube.post(coll, widget("before"))
    start_rv = kube.get(coll).body["metadata"]["resourceVersion"]
    events: list[tuple[str, str, str]] = []

    def consume() -> None:
        for ev in kube.watch(coll, {"resourceVersion": start_rv, "timeoutSeconds": "5"}, timeout_s=10):
            events.append((ev["type"], ev["object"]["metadata"]["name"], ev["object"]["metadata"]["resourceVersion"]))
            if len(events) == 4:
                return

    reader = threading.Thread(target=consume)
    reader.start()
    kube.post(coll, widget("w"))
    kube.patch(f"{coll}/w", {"spec": {"size": 4}})
    kube.patch(f"{coll}/w", {"spec": {"size": 5}})
    kube.delete(f"{coll}/w")
    reader.join(15)
    assert [(t, n) for t, n, _ in events] == [("ADDED", "w"), ("MODIFIED", "w"), ("MODIFIED", "w"), ("DELETED", "w")]
    rvs = [rv for _, _, rv in events]
    assert len(set(rvs)) == 4 and start_rv not in rvs
    # Order without arithmetic: a watch resumed from each event's resourceVersion replays exactly the rest.
    for i, rv in enumerate(rvs[:-1]):
        rest = []
        for ev in kube.watch(coll, {"resourceVersion": rv, "timeoutSeconds": "2"}, timeout_s=10):
            rest.append(ev["object"]["metadata"]["resourceVersion"])
            if len(rest) == len(rvs) - i - 1:
                break
        assert rest == rvs[i + 1:]


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
    events = list(kube.watch(coll, {"resourceVersion": rv, "timeoutSeconds": "1", "allowWatchBookmarks": "true"},
                             timeout_s=20))
    elapsed = time.monotonic() - started
    # kube-apiserver ends the stream when its timer for timeoutSeconds fires; nothing makes it wait longer.
    # The 4 s above the 1 s asked for are for a loaded machine (and a round trip to a remote cluster).
    assert 0.5 <= elapsed < 5, elapsed
    # Nothing changed, so no data events. No bookmark is promised either: kube-apiserver sends its
    # pre-timeout bookmark 2 s before the deadline, a moment already past for timeoutSeconds=1.
    assert [ev["type"] for ev in events if ev["type"] != "BOOKMARK"] == []


def test_bookmark_arrives_before_the_timeout(kube: Kube, ns: str) -> None:
    """kube-apiserver sends allowWatchBookmarks watchers a bookmark 2 s before their deadline, when the
    resource has changed since the watch's resourceVersion (so this test makes one change)."""
    coll = f"{WIDGETS}/namespaces/{ns}/widgets"
    rv = kube.get(coll).body["metadata"]["resourceVersion"]
    events: list[dict] = []
    reader = threading.Thread(target=lambda: events.extend(kube.watch(
        coll, {"resourceVersion": rv, "timeoutSeconds": "5", "allowWatchBookmarks": "true"}, timeout_s=20)))
    reader.start()
    kube.post(coll, widget("b"))
    reader.join(15)
    assert not reader.is_alive()
    types = [ev["type"] for ev in events]
    assert types and types[0] == "ADDED" and events[0]["object"]["metadata"]["name"] == "b"
    bookmarks = events[1:]
    assert bookmarks, "no BOOKMARK before the timeout"
    assert all(ev["type"] == "BOOKMARK" for ev in bookmarks), types
    for ev in bookmarks:
        assert ev["object"]["kind"] == "Widget" and ev["object"]["metadata"]["resourceVersion"]


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


def test_field_selector_watch_sees_only_the_named_object(kube: Kube, ns: str) -> None:
    coll = f"{WIDGETS}/namespaces/{ns}/widgets"
    rv = kube.get(coll).body["metadata"]["resourceVersion"]
    kube.post(coll, widget("other"))
    kube.post(coll, widget("mine"))
    kube.patch(f"{coll}/other", {"spec": {"size": 4}})
    kube.patch(f"{coll}/mine", {"spec": {"size": 5}})
    seen = []
    for ev in kube.watch(coll, {"resourceVersion": rv, "fieldSelector": "metadata.name=mine", "timeoutSeconds": "2"},
                         timeout_s=10):
        seen.append((ev["type"], ev["object"]["metadata"]["name"]))
    assert seen == [("ADDED", "mine"), ("MODIFIED", "mine")]
