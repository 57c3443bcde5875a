"""Status conditions shared by every kind (the Kubernetes metav1.Condition shape).

`lastTransitionTime` moves only when a condition's status changes, so clients can tell how long a
resource has been in its current state; reason/message updates alone do not reset it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

ConditionStatus = Literal["True", "False", "Unknown"]


def now_rfc3339() -> str:
    """The Kubernetes timestamp format: second precision, UTC, trailing Z."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Condition(BaseModel):
    """One aspect of the resource's current state (the Kubernetes metav1.Condition shape)."""

    # Attribute docstrings become the fields' descriptions in the CRDs (`kubectl explain`).
    model_config = ConfigDict(populate_by_name=True, extra="ignore", use_attribute_docstrings=True)

    type: str = Field(min_length=1, max_length=316)
    """Type of the condition in CamelCase, e.g. Ready."""
    status: ConditionStatus
    """Status of the condition: True, False or Unknown."""
    observed_generation: int | None = Field(default=None, alias="observedGeneration", ge=0)
    """The metadata.generation the condition was set for."""
    last_transition_time: str | None = Field(default=None, alias="lastTransitionTime")
    """When the status last changed (RFC 3339); reason or message updates alone do not move it."""
    last_probe_time: str | None = Field(default=None, alias="lastProbeTime")
    """When the condition was last probed (RFC 3339)."""
    reason: str = Field(default="", max_length=1024)
    """Machine-readable CamelCase reason for the last transition."""
    message: str = Field(default="", max_length=32768)
    """Human-readable details about the last transition."""


def get_condition(conditions: list[Condition], type_: str) -> Condition | None:
    return next((c for c in conditions if c.type == type_), None)


def is_true(conditions: list[Condition], type_: str) -> bool:
    cond = get_condition(conditions, type_)
    return cond is not None and cond.status == "True"


def set_condition(
    conditions: list[Condition],
    type_: str,
    status: ConditionStatus,
    *,
    reason: str,
    message: str = "",
    observed_generation: int | None = None,
    now: str | None = None,
) -> bool:
    """Set a condition in place; return True when anything observable changed.

    Callers use the return value to skip a status write when nothing changed.
    """
    stamp = now or now_rfc3339()
    current = get_condition(conditions, type_)
    if current is None:
        conditions.append(
            Condition(
                type=type_,
                status=status,
                reason=reason,
                message=message,
                observed_generation=observed_generation,
                last_transition_time=stamp,
            )
        )
        return True
    changed = (current.status, current.reason, current.message, current.observed_generation) != (
        status,
        reason,
        message,
        observed_generation,
    )
    if current.status != status:
        current.last_transition_time = stamp
    current.status = status
    current.reason = reason
    current.message = message
    current.observed_generation = observed_generation
    return changed
