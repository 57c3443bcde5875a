"""Which informer events queue work, and what a read after our own write returns
(wasmfleet.operator.reconciling, wasmfleet.kube.owners, wasmfleet.kube.freshness).

Checks: a controller's own last write coming back as a watch event does not queue its object, any
other version of it does (someone else's write, a resync of an older version), and a deletion
forgets the write; a write by another controller to the same kind (the deployment controller
scaling a replica set) is not taken for the set controller's own; a child's event queues its owner
only when something the owner reads changed (ADDED and DELETED always), per child; reads after our
own write return the written copy until the watch delivers that version, then the cache (also when
the watch was quicker than the write's reply).

No API server is needed: the handlers are plain functions of (event, object); the informer and
reader they sit behind are the real classes, never started.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from wasmfleet.api import groups
from wasmfleet.kube import freshness, informing, owners, rest_paths
from wasmfleet.operator import reconciling, replicasets


def _obj(name: str, rv: str, **status: Any) -> dict[str, Any]:
    return {
        "apiVersion": groups.API_VERSION, "kind": "Workload",
        "metadata": {"name": name, "namespace": "default", "resourceVersion": rv, "uid": f"uid-{name}",
                     "ownerReferences": [{"kind": "WorkloadReplicaSet", "name": "rs", "uid": "rs-uid",
                                          "controller": True}]},
        "status": status,
    }


class _Controller(reconciling.Reconciler[Any]):
    kind, resource, cache = "Workload", rest_paths.WORKLOADS, "workloads"


def _controller() -> _Controller:
    informer = informing.Informer(None, rest_paths.WORKLOADS)  # type: ignore[arg-type]
    ctx = SimpleNamespace(readers={"workloads": freshness.FreshReader(None, informer)})  # type: ignore[arg-type]
    return _Controller(ctx)  # type: ignore[arg-type]


def test_own_write_echo_is_not_queued_but_other_versions_are() -> None:
    ctl = _controller()
    queued: list[str] = []
    handler = ctl.enqueue_self(queued.append)
    handler("ADDED", _obj("a", "1"))
    assert queued == ["default/a"]
    ctl.wrote(_obj("a", "5"))
    handler("MODIFIED", _obj("a", "4"))  # someone else's write before ours
    handler("MODIFIED", _obj("a", "5"))  # ours: the reconcile that wrote it saw this state
    assert queued == ["default/a", "default/a"]
    handler("MODIFIED", _obj("a", "5"))  # the same version again (a resync): queued
    handler("MODIFIED", _obj("a", "6"))
    assert queued == ["default/a"] * 4


def test_deletion_forgets_the_write() -> None:
    ctl = _controller()
    queued: list[str] = []
    handler = ctl.enqueue_self(queued.append)
    ctl.wrote(_obj("a", "7"))
    handler("DELETED", _obj("a", "8"))
    handler("ADDED", _obj("a", "7"))  # recreated, and by chance the same version text: not ours
    assert queued == ["default/a", "default/a"]


def test_a_write_by_another_controller_through_the_shared_reader_is_not_an_echo() -> None:
    ctl = _controller()
    queued: list[str] = []
    handler = ctl.enqueue_self(queued.append)
    ctl.reader.wrote(_obj("a", "3"))  # e.g. the deployment controller patching spec.replicas
    handler("MODIFIED", _obj("a", "3"))
    assert queued == ["default/a"]


def test_a_child_event_queues_its_owner_only_when_what_it_reads_changed() -> None:
    queued: list[str] = []
    handler = owners.enqueue_owner("WorkloadReplicaSet", queued.append, replicasets.what_the_owner_reads)
    handler("ADDED", _obj("a", "1"))
    annotated = _obj("a", "2")
    annotated["metadata"]["annotations"] = {f"{groups.GROUP}/start-fingerprint": "f"}
    handler("MODIFIED", annotated)  # the Workload controller's own bookkeeping
    assert queued == ["default/rs"]
    handler("MODIFIED", _obj("a", "3", hostId="h1"))  # placed: the set's crowding count reads it
    ready = _obj("a", "4", hostId="h1", conditions=[{"type": "Ready", "status": "True"}])
    handler("MODIFIED", ready)
    handler("MODIFIED", ready)  # nothing new
    assert queued == ["default/rs"] * 3
    handler("ADDED", _obj("b", "5"))  # another child has its own record
    handler("DELETED", ready)
    assert queued == ["default/rs"] * 5


def _reader() -> tuple[freshness.FreshReader, informing.Informer]:
    informer = informing.Informer(None, rest_paths.WORKLOADS)  # type: ignore[arg-type]
    return freshness.FreshReader(None, informer), informer  # type: ignore[arg-type]


async def test_reads_after_our_write_return_the_written_copy_until_the_watch_shows_it() -> None:
    reader, informer = _reader()
    informer._apply("ADDED", _obj("a", "1"))  # the watch path the informer feeds its cache from
    written = _obj("a", "2", hostId="h1")
    reader.wrote(written)
    assert await reader.read("default/a") is written  # the cache still has version 1
    echo = _obj("a", "2", hostId="h1")
    informer._apply("MODIFIED", echo)
    assert await reader.read("default/a") is echo
    informer._apply("MODIFIED", _obj("a", "3"))
    assert (await reader.read("default/a") or {})["metadata"]["resourceVersion"] == "3"


async def test_a_write_whose_echo_came_first_is_not_recorded() -> None:
    reader, informer = _reader()
    informer._apply("ADDED", _obj("a", "4"))
    reader.wrote(_obj("a", "4"))  # the reply handled after the watch delivered the same version
    informer._apply("MODIFIED", _obj("a", "5"))
    assert (await reader.read("default/a") or {})["metadata"]["resourceVersion"] == "5"


async def test_a_write_overtaken_by_a_later_change_before_its_reply_is_not_recorded() -> None:
    """The watch delivered our version and then someone else's newer one before our write's reply
    was handled: the cache is current, and a copy of our write must not shadow it (no event is left
    to correct it: a Recreate rollout once waited on a stale ReplicaSet copy for good)."""
    reader, informer = _reader()
    informer._apply("ADDED", _obj("a", "6"))
    informer._apply("MODIFIED", _obj("a", "7"))  # our write
    informer._apply("MODIFIED", _obj("a", "8", hostId="h2"))  # another controller's, right after
    reader.wrote(_obj("a", "7"))
    assert (await reader.read("default/a") or {})["metadata"]["resourceVersion"] == "8"
