"""Pure construction of metav1.Condition lists in the kstatus form (Ready, Reconciling, Stalled)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


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
    now: str,
) -> list[dict[str, Any]]:
    """The wanted conditions, keeping lastTransitionTime where the status did not change."""
    previous = {str(c.get("type")): c for c in existing or []}
    merged: list[dict[str, Any]] = []
    for value in wanted:
        status = "True" if value.status else "False"
        old = previous.get(value.type)
        transition = str(old["lastTransitionTime"]) if old and old.get("status") == status else now
        condition: dict[str, Any] = {
            "type": value.type,
            "status": status,
            "reason": value.reason,
            "message": value.message[:32768],
            "lastTransitionTime": transition,
        }
        if generation is not None:
            condition["observedGeneration"] = generation
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
