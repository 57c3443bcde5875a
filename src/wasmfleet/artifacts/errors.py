"""Why a component could not be fetched, in one line, and whether retrying may help."""

from __future__ import annotations


class ArtifactError(Exception):
    """A fetch failed. `retryable` is False when asking again cannot help (not found, denied,
    malformed), True for transient trouble (network, registry 5xx, timeouts)."""

    def __init__(self, image: str, reason: str, *, retryable: bool = False) -> None:
        self.image = image
        self.reason = " ".join(reason.split())
        self.retryable = retryable
        super().__init__(f"{image}: {self.reason}")
