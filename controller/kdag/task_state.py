"""What the controller knows of one task of a run: `TaskState`, what `graph.decide` reads (made by
`settle.settle` from a TaskRun, by `kdag run --local` from an attempt's result)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from kdag.api.models import TaskPhase


@dataclass(frozen=True)
class TaskState:
    """What the controller knows of one task of a run (from its TaskRun status)."""

    phase: TaskPhase
    attempts: int = 0
    next_attempt_at: datetime | None = None
    """When a Retrying task's next attempt, or an UpForReschedule sensor's next poke, is due."""
    skip_tasks: frozenset[str] = frozenset()
    """Tasks a Succeeded task asked to skip (`skipTasks` of its report: a branch's tasks not followed)."""
    reschedules: int = 0
    """Attempts that ended up for reschedule: they are no tries, so `attempts - reschedules` retries used."""
    # What mapped tasks read of it; left out of comparisons (a state is its phase, attempts and due time).
    xcom_lengths: Mapping[str, int] = field(default_factory=dict, compare=False)
    """Length of each pushed list or dict by ConfigMap key (`xcomLengths`): what mapped tasks expand over."""
    xcom_keys: frozenset[str] = field(default=frozenset(), compare=False)
    """ConfigMap keys the task pushed (a mapped upstream's instances count by them)."""
