"""Garbage collection inside the server: ownerReference cascades, orphaning, namespace teardown.

Driven by committed changes (never by polling): a deleted owner takes its dependents along (background),
an owner deleting in the foreground keeps its `foregroundDeletion` finalizer until its dependents are
gone, an `orphan` finalizer strips the owner's references from dependents, and a terminating namespace
empties itself before it disappears. Startup rescans everything, so a crash mid-cascade resumes.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
from typing import Any

from wasmfleet.apiserver import errors, kinds
from wasmfleet.apiserver.engine import FOREGROUND, ORPHAN, Engine, WriteOptions
from wasmfleet.apiserver.resource_types import ResourceType
from wasmfleet.apiserver.store import ObjKey
from wasmfleet.apiserver.watching import StoreKey, WatchEvent

log = logging.getLogger(__name__)
OPTS = WriteOptions(manager="garbage-collector")
Item = tuple[str, str]  # ("owner-gone", uid) | ("deleting", uid) | ("namespace", name)


class GarbageCollector:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._store = engine.store
        self._queue: asyncio.Queue[Item] = asyncio.Queue()
        self._queued: set[Item] = set()
        self._task: asyncio.Task[None] | None = None

    def _put(self, item: Item) -> None:
        if item not in self._queued:
            self._queued.add(item)
            self._queue.put_nowait(item)

    def on_commit(self, events: list[WatchEvent]) -> None:
        for ev in events:
            meta = ev.obj.get("metadata", {})
            uid = meta.get("uid", "")
            if ev.type == "DELETED":
                if self._store.owners.get(uid):
                    self._put(("owner-gone", uid))
                for ref in meta.get("ownerReferences") or ():
                    self._put(("deleting", str(ref.get("uid"))))  # a foreground owner may now finish
                ns = meta.get("namespace")
                if ns:
                    self._put(("namespace", ns))
            elif meta.get("deletionTimestamp"):
                if ev.key == ("", "namespaces"):
                    self._put(("namespace", meta["name"]))
                else:
                    self._put(("deleting", uid))

    def start(self) -> None:
        self._rescan()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="garbage-collector")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _rescan(self) -> None:
        for uid in list(self._store.owners):
            if self._store.by_uid(uid) is None:
                self._put(("owner-gone", uid))
        for key in self._store.store_keys():
            for _, st in list(self._store.items(key)):
                meta = st.obj["metadata"]
                if meta.get("deletionTimestamp"):
                    self._put(("namespace", meta["name"]) if key == ("", "namespaces") else ("deleting", meta["uid"]))

    async def _run(self) -> None:
        while True:
            item = await self._queue.get()
            self._queued.discard(item)
            try:
                await self._handle(item)
            except errors.ApiError as exc:  # the object moved on meanwhile: the next event retries
                log.debug("gc %s: %s", item, exc.message)
            except Exception:
                log.exception("garbage collection of %s failed", item)

    def _type_of(self, key: StoreKey) -> ResourceType | None:
        return self._engine.registry.storage_type(*key)

    async def _await(self, fut: Any) -> None:
        if fut is not None:
            await fut

    async def _handle(self, item: Item) -> None:
        kind, ident = item
        if kind == "owner-gone":
            await self._owner_gone(ident)
        elif kind == "deleting":
            await self._deleting(ident)
        else:
            await self._namespace(ident)

    async def _owner_gone(self, uid: str) -> None:
        if self._store.by_uid(uid) is not None:
            return
        for key, okey in self._store.dependents(uid):
            st = self._store.get(key, *okey)
            rt = self._type_of(key)
            if st is None or rt is None:
                continue
            refs = st.obj["metadata"].get("ownerReferences") or []
            alive = [r for r in refs if r.get("uid") != uid and self._store.by_uid(str(r.get("uid"))) is not None]
            if alive:
                await self._drop_refs(rt, key, okey, uid)
            else:
                _, fut = self._engine.delete(rt, okey[0], okey[1], {}, OPTS)
                await self._await(fut)

    async def _drop_refs(self, rt: ResourceType, key: StoreKey, okey: ObjKey, uid: str) -> None:
        st = self._store.get(key, *okey)
        if st is None:
            return
        new = copy.deepcopy(st.obj)
        refs = [r for r in new["metadata"].get("ownerReferences") or [] if r.get("uid") != uid]
        if refs:
            new["metadata"]["ownerReferences"] = refs
        else:
            new["metadata"].pop("ownerReferences", None)
        _, fut = self._engine.write_update(rt, okey[0], okey[1], st.obj, new, OPTS, "")
        await self._await(fut)

    async def _remove_finalizer(self, rt: ResourceType, key: StoreKey, okey: ObjKey, finalizer: str) -> None:
        st = self._store.get(key, *okey)
        if st is None:
            return
        new = copy.deepcopy(st.obj)
        new["metadata"]["finalizers"] = [f for f in new["metadata"].get("finalizers") or [] if f != finalizer]
        if not new["metadata"]["finalizers"]:
            del new["metadata"]["finalizers"]
        _, fut = self._engine.write_update(rt, okey[0], okey[1], st.obj, new, OPTS, "")
        await self._await(fut)

    async def _deleting(self, uid: str) -> None:
        found = self._store.by_uid(uid)
        if found is None:
            return
        key, okey, st = found
        rt = self._type_of(key)
        finalizers = st.obj["metadata"].get("finalizers") or []
        if rt is None or not st.obj["metadata"].get("deletionTimestamp"):
            return
        if ORPHAN in finalizers:
            for dkey, dokey in self._store.dependents(uid):
                drt = self._type_of(dkey)
                if drt is not None:
                    await self._drop_refs(drt, dkey, dokey, uid)
            await self._remove_finalizer(rt, key, okey, ORPHAN)
        elif FOREGROUND in finalizers:
            deps = self._store.dependents(uid)
            if not deps:
                await self._remove_finalizer(rt, key, okey, FOREGROUND)
                return
            for dkey, dokey in deps:
                drt = self._type_of(dkey)
                dst = self._store.get(dkey, *dokey)
                if drt is None or dst is None or dst.obj["metadata"].get("deletionTimestamp"):
                    continue
                _, fut = self._engine.delete(drt, dokey[0], dokey[1], {"propagationPolicy": "Foreground"}, OPTS)
                await self._await(fut)

    async def _namespace(self, name: str) -> None:
        ns_rt = self._type_of(("", "namespaces"))
        st = self._store.get(("", "namespaces"), "", name)
        if ns_rt is None or st is None or not st.obj["metadata"].get("deletionTimestamp"):
            return
        remaining = 0
        for key in self._store.store_keys():
            rt = self._type_of(key)
            if rt is None or not rt.namespaced:
                continue
            for okey, obj in list(self._store.items(key, name)):
                remaining += 1
                if not obj.obj["metadata"].get("deletionTimestamp"):
                    _, fut = self._engine.delete(rt, okey[0], okey[1], {}, OPTS)
                    await self._await(fut)
        if remaining:
            return  # the DELETED events of the content bring us back here
        current = self._store.get(("", "namespaces"), "", name)
        if current is None or not kinds.is_namespace(ns_rt):
            return
        new = copy.deepcopy(current.obj)
        new.setdefault("spec", {})["finalizers"] = []
        _, fut = self._engine.write_update(ns_rt, "", name, current.obj, new, OPTS, "")
        await self._await(fut)
