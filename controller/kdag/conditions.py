"""Pure construction of metav1.Condition lists in the kstatus form (Ready, Reconciling, Stalled)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from kdag.api.models import Condition


@dataclass(frozen=True)
class ConditionValue:
    """The parts of a condition a handler decides; `merge_conditions` adds times and generation."""

    type: str
    status: bool
    reason: str
    message: str = ""


def merge_conditions(
    existing: Sequence[Mapping[str, Any]] | None,
    wanted: Sequence[ConditionValue],
    generation: int | None,
    now: datetime,
) -> list[Condition]:
    """The wanted conditions, keeping lastTransitionTime where the status did not change."""
    previous = {str(c.get("type")): c for c in existing or []}
    merged: list[Condition] = []
    for value in wanted:
        status: Literal["True", "False"] = "True" if value.status else "False"
        old = previous.get(value.type)
        kept = old is not None and old.get("status") == status and old.get("lastTransitionTime")
        transition = Condition.model_validate(old).last_transition_time if kept and old else now
        condition = Condition(
            type=value.type,
            status=status,
            reason=value.reason,
            message=value.message[:32768],
            last_transition_time=transition,
        )
        if generation is not None:
            condition.observed_generation = generation
        merged.append(condition)
    return merged


def run_conditions(phase: str, message: str) -> list[ConditionValue]:
    """kstatus conditions of a DAGRun in `phase`: Reconciling while it runs, Stalled when it failed."""
    if phase == "Succeeded":
        return [
            ConditionValue("Ready", True, "Succeeded", message),
            ConditionValue("Reconciling", False, "Succeeded"),
            ConditionValue("Stalled", False, "Succeeded"),
        ]
    if phase == "Failed":
        return [
            ConditionValue("Ready", False, "Failed", message),
            ConditionValue("Reconciling", False, "Failed"),
            ConditionValue("Stalled", True, "Failed", message),
        ]
    return [
        ConditionValue("Ready", False, phase, message),
        ConditionValue("Reconciling", True, phase, message),
        ConditionValue("Stalled", False, phase),
    ]


def invalid_conditions(reason: str, message: str) -> list[ConditionValue]:
    """Conditions of an object the controller cannot act on until a user fixes it."""
    return [
        ConditionValue("Ready", False, reason, message),
        ConditionValue("Reconciling", False, reason),
        ConditionValue("Stalled", True, reason, message),
    ]
