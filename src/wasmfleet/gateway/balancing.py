"""Choosing a backend: least outstanding requests, round robin among ties, passive ejection.

Kept apart from the HTTP code so the policy is unit-testable with plain objects and a fake clock.

- Least outstanding requests: a replica still busy with slow requests gets fewer new ones.
- Ties (the common case at low load) rotate round robin, so sequential requests visit every replica.
- A backend whose connection just failed is ejected for ``eject_s`` seconds: the API may need seconds to
  notice a dead host, and until then every request would first hit the dead one and pay a retry. When
  every backend of a route is ejected, ejection is ignored (better to try than to refuse).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from wasmfleet.gateway import routes


@dataclass
class _State:
    outstanding: int = 0
    ejected_until: float = 0.0


@dataclass
class Balancer:
    """Per-backend counters shared by every route (a host serves many routes on one port)."""

    eject_s: float = 3.0
    """How long a backend that refused a connection is skipped; a few heartbeats' worth."""
    clock: Callable[[], float] = time.monotonic
    _states: dict[tuple[str, int], _State] = field(default_factory=dict)
    _rotation: dict[str, int] = field(default_factory=dict)

    def _state(self, backend: routes.Backend) -> _State:
        key = (backend.address, backend.port)
        state = self._states.get(key)
        if state is None:
            state = self._states[key] = _State()
        return state

    def choose(
        self, route: str, backends: Sequence[routes.Backend], exclude: set[routes.Backend]
    ) -> routes.Backend | None:
        """The next backend for ``route``, skipping ``exclude`` (already tried for this request)."""
        candidates = [b for b in backends if b not in exclude]
        if not candidates:
            return None
        now = self.clock()
        healthy = [b for b in candidates if self._state(b).ejected_until <= now]
        pool = healthy or candidates
        start = self._rotation.get(route, 0)
        self._rotation[route] = start + 1
        n = len(pool)
        rotated = [pool[(start + i) % n] for i in range(n)]
        return min(rotated, key=lambda b: self._state(b).outstanding)

    def acquire(self, backend: routes.Backend) -> None:
        self._state(backend).outstanding += 1

    def release(self, backend: routes.Backend) -> None:
        state = self._state(backend)
        state.outstanding = max(0, state.outstanding - 1)

    def outstanding(self, backend: routes.Backend) -> int:
        return self._state(backend).outstanding

    def eject(self, backend: routes.Backend) -> None:
        self._state(backend).ejected_until = self.clock() + self.eject_s

    def restore(self, backend: routes.Backend) -> None:
        """A successful exchange proves the backend alive again."""
        self._state(backend).ejected_until = 0.0

    def forget_except(self, live: set[tuple[str, int]]) -> None:
        """Drop counters of backends no longer in the table (idle ones only) so memory stays bounded."""
        for key in [k for k, s in self._states.items() if k not in live and s.outstanding == 0]:
            del self._states[key]
