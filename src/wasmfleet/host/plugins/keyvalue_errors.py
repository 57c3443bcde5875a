"""What every wasi:keyvalue backend raises: the WIT `error` variant, mapped at each backend's boundary."""

from __future__ import annotations


class KeyValueFailure(Exception):
    """A wasi:keyvalue error: `case` is no-such-store, access-denied or other (with the message)."""

    def __init__(self, case: str, message: str = "") -> None:
        self.case = case
        super().__init__(message or case)
