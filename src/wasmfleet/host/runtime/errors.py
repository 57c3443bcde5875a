"""Errors raised by the runtime, each carrying one line fit for a user or a Workload condition.

`ComponentError` is permanent for a given component file and grants (retrying will not help);
`RuntimeUnavailable` is temporary (the server is stopping or a worker died) and worth a retry.
"""

from __future__ import annotations


class RuntimeError_(Exception):
    """Base of the runtime's own errors; `str(err)` is a single line."""


class ComponentError(RuntimeError_):
    """The component cannot run: not a component, bad imports, no incoming-handler, ...

    Permanent for this file and these grants: retrying the same input gives the same answer.
    """

    def __init__(self, path: object, cause: str) -> None:
        self.path = str(path)
        self.cause = " ".join(str(cause).split())
        super().__init__(f"{self.path}: {self.cause}")

    def __reduce__(self) -> tuple[type[ComponentError], tuple[str, str]]:
        # Crosses the pipe from worker processes: rebuild from both fields, not from args.
        return (ComponentError, (self.path, self.cause))


class RuntimeUnavailable(RuntimeError_):
    """The server is stopping or not started; temporary, retry later."""


class GuestTrap(RuntimeError_):
    """The guest trapped (or was interrupted) during a call; its instance must be discarded."""

    def __init__(self, message: str, *, deadline: bool = False, memory: bool = False) -> None:
        self.deadline = deadline
        self.memory = memory
        super().__init__(" ".join(message.split())[:500])

    def __reduce__(self) -> tuple[type[GuestTrap], tuple[str], dict[str, bool]]:
        return (GuestTrap, (str(self),), {"deadline": self.deadline, "memory": self.memory})
