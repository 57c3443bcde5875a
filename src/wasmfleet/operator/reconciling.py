"""The shape every reconciler shares, so each controller holds only what is particular to its kind.

    class ReplicaSetReconciler(reconciling.Reconciler[models.WorkloadReplicaSet]):
        kind, resource, cache, model = "WorkloadReplicaSet", rest_paths.REPLICASETS, "replicasets", ...

        async def converge(self, obj, rs) -> float | None: ...

`reconcile(key)` reads the object (from the cache, or the API server after our own write), hands an
object being deleted to `finalize`, parses it (an invalid object is a `PermanentError`: retrying
cannot help) and calls `converge`, which returns None when done or a delay to look again.
`write_status` patches /status only when it changed and remembers the write for the next read.
`enqueue_self` is the kind's informer handler: it queues the object's key, except for the watch
event of this controller's own last write, which brings nothing the reconcile that wrote it did not
already act on (a Workload's first placement writes three times; each echo was one more full
reconcile that changed nothing).

Kinds with ordered condition steps run them with `run_steps`: each step either lets the next one
run (returns None) or ends the reconcile with `Stop(after)`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import pydantic

from wasmfleet.api import conditions
from wasmfleet.kube import client, rest_paths, running
from wasmfleet.operator import context, statuses

M = TypeVar("M", bound=pydantic.BaseModel)
S = TypeVar("S")


class Reconciler(Generic[M]):
    kind: str  # the Kind, for messages
    resource: rest_paths.Resource
    cache: str  # which of ctx.readers serves this kind
    model: type[M]

    def __init__(self, ctx: context.Context) -> None:
        self.ctx = ctx
        self.reader = ctx.readers[self.cache]
        # key -> resourceVersion of this controller's last write, until its watch event arrives.
        self._echoes: dict[str, str] = {}

    async def reconcile(self, key: str) -> float | None:
        obj = await self.reader.read(key)
        if obj is None:
            return None
        if obj["metadata"].get("deletionTimestamp"):
            return await self.finalize(obj)
        try:
            parsed = self.model.model_validate(obj)
        except pydantic.ValidationError as exc:
            raise running.PermanentError(f"invalid {self.kind}: {exc.errors()[0]['msg']}") from exc
        return await self.converge(obj, parsed)

    async def finalize(self, obj: client.Obj) -> float | None:
        """The object is being deleted. By default nothing to do: the API server's garbage
        collector removes owned objects."""
        return None

    async def converge(self, obj: client.Obj, parsed: M) -> float | None:
        raise NotImplementedError

    def wrote(self, obj: client.Obj) -> client.Obj:
        """Record one of our writes, so the next read is at least this new (and its watch event is
        known as our own)."""
        version = str(obj["metadata"].get("resourceVersion") or "")
        if version:
            self._echoes[rest_paths.key_of(obj)] = version
        return self.reader.wrote(obj)

    def enqueue_self(self, add: Callable[[str], None]) -> Callable[[str, client.Obj], None]:
        """The informer handler queueing an object's own key for this reconciler, but not for the
        event of our own last write to it: the state it carries is the one that reconcile wrote,
        and any other change to the object arrives as an event of its own (with another version).
        The periodic resync still delivers everything."""

        def handler(event: str, obj: client.Obj) -> None:
            key = rest_paths.key_of(obj)
            if event == "DELETED":
                self._echoes.pop(key, None)
            elif self._echoes.get(key) == obj["metadata"].get("resourceVersion"):
                del self._echoes[key]
                return
            add(key)

        return handler

    async def write_status(self, obj: client.Obj, status: pydantic.BaseModel) -> client.Obj | None:
        """Patch /status when it changed; the written object, or None when nothing changed."""
        body = status.model_dump(by_alias=True, exclude_none=True, mode="json")
        written = await statuses.write(self.ctx.kube, self.resource, obj, body)
        if written is not None:
            self.wrote(written)
        return written


class Conditions:
    """A status's conditions kept in the kind's order, each set with the object's generation."""

    def __init__(self, conds: list[conditions.Condition], order: tuple[str, ...], generation: int | None) -> None:
        self.list, self.order, self.generation = conds, order, generation
        self._now = ""  # one timestamp per reconcile (second precision), formatted when first needed
        statuses.ensure_order(conds, order, generation)

    def set(self, type_: str, status: conditions.ConditionStatus, reason: str, message: str = "") -> None:
        current = conditions.get_condition(self.list, type_)
        if current is None or current.status != status:  # only a transition stamps the time
            self._now = self._now or conditions.now_rfc3339()
        # Without a transition set_condition reads no time, so it is not formatted for nothing.
        conditions.set_condition(self.list, type_, status, reason=reason, message=message,
                                 observed_generation=self.generation, now=self._now or "unused")

    def set_from(self, first: str, status: conditions.ConditionStatus, reason: str, message: str) -> None:
        """Set `first` and every later condition alike (a failed step explains the ones after it)."""
        for type_ in self.order[self.order.index(first):]:
            self.set(type_, status, reason, message)

    def status_of(self, type_: str) -> str:
        cond = conditions.get_condition(self.list, type_)
        return cond.status if cond is not None else ""


@dataclass(frozen=True)
class Stop:
    """Returned by a condition step: end this reconcile here (look again after `after` s, or when
    something changes if None)."""

    after: float | None


Step = Callable[[S], Awaitable[Stop | None]]


async def run_steps(steps: Sequence[Step[S]], state: S) -> float | None:
    """Run the condition steps in order until one stops; None when all of them ran."""
    for step in steps:
        stop = await step(state)
        if stop is not None:
            return stop.after
    return None


def as_dict(model: pydantic.BaseModel) -> dict[str, Any]:
    return model.model_dump(by_alias=True, exclude_none=True, mode="json")
