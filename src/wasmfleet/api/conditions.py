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
    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    type: str = Field(min_length=1, max_length=316)
    status: ConditionStatus
    observed_generation: int | None = Field(default=None, alias="observedGeneration", ge=0)
    last_transition_time: str | None = Field(default=None, alias="lastTransitionTime")
    last_probe_time: str | None = Field(default=None, alias="lastProbeTime")
    reason: str = Field(default="", max_length=1024)
    message: str = Field(default="", max_length=32768)


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
