"""A task's questions about other runs, and their answers (docs/design.md, "Questions about other runs").

A task pod holds no right to read or create DAGRuns: it runs user code. An operator that needs another run
asks instead: its attempt ends up for reschedule with the question in its report, `settle` records it in
the TaskRun's status, and whoever runs the task answers in the next attempt's environment. This module is
the one place that knows the kinds of question:

| operator (what it asks) | report key / TaskRun status | next attempt's variable | module |
| --- | --- | --- | --- |
| TriggerDagRunOperator (a run; its phase) | `triggerDagRun` / `trigger` | `KDAG_TRIGGERED_RUN` | `triggers` |
| ExternalTaskSensor (another DAG's runs) | `externalRuns` (both) | `KDAG_EXTERNAL_RUNS` | `external_runs` |

`parse` reads a report (`kdag.attempts`), `recorded` is what `settle` writes of it, `Asked` what a TaskRun's
status holds, `for_attempt` whether the next attempt may start and with answers, `needs` what the controller
reads for them and `answers` the variables (`kdag.handlers.questions` does the reads). `kdag run --local`
answers the same questions from its own runs (`kdag.local`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from kdag import external_runs, triggers
from kdag.api.models import ExternalRunsQuery, TaskRunStatus, TriggeredRun, TriggerState
from kdag.render import format_time

TRIGGERED_RUN_ENV = "KDAG_TRIGGERED_RUN"
EXTERNAL_RUNS_ENV = "KDAG_EXTERNAL_RUNS"


@dataclass(frozen=True)
class Questions:
    """What one attempt's report asked."""

    trigger: triggers.TriggerRequest | None = None
    """A TriggerDagRunOperator's request (`triggerDagRun`): the run to start."""
    external_runs: ExternalRunsQuery | None = None
    """An ExternalTaskSensor's question (`externalRuns`): the runs and tasks it waits for."""


def parse(report: Mapping[str, Any]) -> tuple[Questions, str]:
    """The questions of a reschedule report, or why the report is refused ("" when it is fine)."""
    trigger, external = None, None
    if "triggerDagRun" in report:
        trigger, problem = triggers.parse_request(report["triggerDagRun"])
        if problem:
            return Questions(), problem
    if "externalRuns" in report:
        external, problem = external_runs.parse_query(report["externalRuns"])
        if problem:
            return Questions(), problem
    return Questions(trigger, external), ""


def describe(questions: Questions, next_at: datetime) -> str:
    """The TaskRun's message for an attempt that ended up for reschedule."""
    if questions.trigger is not None:
        return f"asked to trigger DAG '{questions.trigger.dag_id}'"
    later = f"the next attempt starts at {format_time(next_at)}"
    if questions.external_runs is not None:
        return f"waiting for DAG '{questions.external_runs.dag_id}': {later}"
    return f"up for reschedule: {later}"


def recorded(questions: Questions, try_number: int) -> dict[str, Any]:
    """The TaskRun status fields that record an attempt's questions (`settle` writes them)."""
    changes: dict[str, Any] = {}
    if questions.trigger is not None:
        changes["trigger"] = triggers.requested(questions.trigger, try_number)
    if questions.external_runs is not None:
        # Every field set (None included): the status patch replaces an earlier poke's question whole.
        query = questions.external_runs
        changes["external_runs"] = ExternalRunsQuery(
            dag_id=query.dag_id,
            task_ids=query.task_ids,
            task_group_id=query.task_group_id,
            logical_dates=query.logical_dates,
        )
    return changes


@dataclass(frozen=True)
class Asked:
    """The questions a TaskRun's status holds."""

    trigger: TriggeredRun | None = None
    external_runs: ExternalRunsQuery | None = None

    @classmethod
    def of(cls, status: TaskRunStatus, patch: TaskRunStatus | None = None) -> Asked:
        """What `status` holds once `patch` (this pass's, if any) is written."""
        newer = patch or TaskRunStatus()
        return cls(
            trigger=newer.trigger or status.trigger,
            external_runs=newer.external_runs or status.external_runs,
        )


def for_attempt(asked: Asked | None, try_number: int) -> Literal["ask", "wait", "answer"]:
    """What the next attempt, of try `try_number`, gets: nothing (`ask`), to wait (`wait`: the controller
    has not acted on its try's trigger request yet), or its answers (`answer`). A sensor's question is
    answered for every attempt after it: each reads the other runs as they are when it starts."""
    if asked is None:
        return "ask"
    step = triggers.for_attempt(asked.trigger, try_number)
    if step == "ask" and asked.external_runs is not None:
        return "answer"
    return step


def needs(asked: Asked, try_number: int) -> tuple[str | None, bool]:
    """What to read for the answers: the DAGRun a trigger request made (None: none), and whether the
    namespace's DAGs and DAGRuns are wanted (a sensor's question)."""
    trigger = asked.trigger
    run = None
    if triggers.for_attempt(trigger, try_number) == "answer" and trigger is not None:
        run = trigger.run if trigger.state == TriggerState.TRIGGERED else None
    return run, asked.external_runs is not None


def answers(
    asked: Asked,
    try_number: int,
    *,
    namespace: str,
    triggered_run: Mapping[str, Any] | None = None,
    dags: Sequence[Mapping[str, Any]] = (),
    dagruns: Sequence[Mapping[str, Any]] = (),
    version_tasks: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, dict[str, Any]]:
    """The next attempt's answer variables (name -> JSON object) from what `needs` said to read (and the
    task ids of the DAG versions `external_runs.asked_runs` follow, by DAGVersion name)."""
    env: dict[str, dict[str, Any]] = {}
    if asked.trigger is not None and triggers.for_attempt(asked.trigger, try_number) == "answer":
        env[TRIGGERED_RUN_ENV] = triggers.answer(asked.trigger, triggered_run)
    if asked.external_runs is not None:
        env[EXTERNAL_RUNS_ENV] = external_runs.cluster_answer(
            asked.external_runs, dags, dagruns, namespace, version_tasks
        )
    return env
