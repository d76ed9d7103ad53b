"""Cross-DAG dependencies: ``ExternalTaskSensor``, ``ExternalTaskMarker`` and ``ExternalDagLink`` (Airflow
3's, from the standard provider), with the provider's exceptions.

``ExternalTaskSensor`` waits for a task (``external_task_id``), several (``external_task_ids``), a task group
(``external_task_group_id``) or the whole run (none of them) of the DAG ``external_dag_id`` in the same
namespace, in its run with this run's logical date (or the dates ``execution_delta`` or
``execution_date_fn`` give). A task pod may not read DAGRuns, so each poke asks (docs/design.md,
"Waiting for another DAG"):

1. An attempt without an answer ends up for reschedule at once with its question in the report:
   ``{"externalRuns": {"dagId", "taskIds"?, "taskGroupId"?, "logicalDates"}}`` (``ExternalRunsQuestion``).
2. The controller (``kdag run --local``: the runs that session made) starts the next attempt with
   ``KDAG_EXTERNAL_RUNS`` (``ti.external_runs``), read when the attempt starts: the question it answers
   (``asked``), whether the DAG, the tasks and the group exist, and the newest run at each logical date
   with its state and its tasks' states counted by Airflow state (a mapped task's instances one by one).
3. That attempt pokes: it counts as Airflow 3.3's ``_poke_af3`` counts (``failed_states`` first, then
   ``skipped_states``, then done when ``allowed_states`` are reached at every date) and, not done, ends up
   for reschedule ``poke_interval`` later asking again; timeout, ``soft_fail``, exponential backoff and
   ``max_wait`` are every sensor's (sensors.py).

Every mode waits that way: a pod in ``mode="poke"`` would never learn anything new (its environment is
fixed when it starts), so the sensor always reschedules (its ``mode`` reads ``reschedule``; the timeout
counts from the task's first attempt), and ``deferrable=True`` too (kdag has no triggerer).

``ExternalTaskMarker`` is an ``EmptyOperator`` at run time, as in Airflow: it only tells a recursive clear
of its task to clear the other DAG's task too, and kdag clears nothing. Both push the
``_link_ExternalDagLink`` XCom (``/dags/{external_dag_id}/runs/{run_id}``) as Airflow 3's task runner does.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

from kdag_runner.airflow.empty import EmptyOperator
from kdag_runner.airflow.exceptions import (
    AirflowException,
    AirflowRescheduleException,
    AirflowSkipException,
    DagDefinitionError,
    RunQuestion,
)
from kdag_runner.airflow.python import callable_kwargs
from kdag_runner.airflow.sensors import BaseSensorOperator
from kdag_runner.airflow.trigger_dagrun import dagrun_url

DAG_RUN_STATES = ("queued", "running", "success", "failed")
"""Airflow's ``State.dag_states``: what the states of a sensor waiting for a whole run may name."""
TASK_STATES = (
    "removed",
    "scheduled",
    "queued",
    "running",
    "success",
    "restarting",
    "failed",
    "up_for_retry",
    "up_for_reschedule",
    "upstream_failed",
    "skipped",
    "deferred",
    None,
)
"""Airflow's ``State.task_states`` (None: not started yet): what the states of a sensor on tasks may name."""
NOT_STARTED = "none"
"""How an answer spells a task instance that has no state yet (Airflow's None)."""


class AirflowExternalTaskSensorException(AirflowException):
    """The standard provider's base of the sensor's errors."""


class ExternalDagNotFoundError(AirflowExternalTaskSensorException):
    """``check_existence``: no DAG has the dag id."""


class ExternalDagDeletedError(AirflowExternalTaskSensorException):
    """Airflow's (the DAG's file is gone); kdag never raises it."""


class ExternalTaskNotFoundError(AirflowExternalTaskSensorException):
    """``check_existence``: the DAG has no such task."""


class ExternalTaskGroupNotFoundError(AirflowExternalTaskSensorException):
    """``check_existence``: the DAG has no such task group."""


class ExternalTaskFailedError(AirflowExternalTaskSensorException):
    """A task waited for reached one of ``failed_states``."""


class ExternalTaskGroupFailedError(AirflowExternalTaskSensorException):
    """The task group waited for reached one of ``failed_states``."""


class ExternalDagFailedError(AirflowExternalTaskSensorException):
    """The run waited for reached one of ``failed_states``."""


class DuplicateStateError(AirflowExternalTaskSensorException):
    """Airflow's for a state in two of the lists; kdag refuses it at load (``DagDefinitionError``)."""


class ExternalDagLink:
    """Airflow's operator link to the other DAG's run of this run's id; its XCom (``_link_ExternalDagLink``)
    is pushed as Airflow 3 pushes it."""

    name = "External DAG"

    @property
    def xcom_key(self) -> str:
        return f"_link_{type(self).__name__}"

    def get_link(self, operator: Any, *, ti_key: Any = None) -> str:
        return dagrun_url(str(getattr(operator, "external_dag_id", "")), str(getattr(ti_key, "run_id", "")))


def _push_link(operator: Any, context: Mapping[str, Any]) -> None:
    link = dagrun_url(str(operator.external_dag_id), str(context["run_id"]))
    context["ti"].xcom_push(key=ExternalDagLink().xcom_key, value=link)


class ExternalRunsQuestion(RunQuestion):
    """A poke's question (the report's ``externalRuns``); the next attempt reads the answer
    (``ti.external_runs``)."""

    report_key = "externalRuns"

    def describe(self) -> str:
        return f"asking about the runs of DAG {self.body.get('dagId')!r}"

    def too_long(self, size: int, limit: int) -> str:
        return (
            f"the question about the runs of DAG {self.body.get('dagId')!r} takes {size} bytes of the"
            f" {limit}-byte termination message: wait for fewer tasks or logical dates"
        )


class ExternalTaskSensor(BaseSensorOperator):
    """Waits for tasks, a task group or a run of another DAG at a logical date (see the module docstring)."""

    template_fields: Sequence[str] = (
        "external_dag_id",
        "external_task_id",
        "external_task_ids",
        "external_task_group_id",
    )
    ui_color = "#4db7db"
    operator_extra_links = (ExternalDagLink(),)

    def __init__(
        self,
        *,
        external_dag_id: str,
        external_task_id: str | None = None,
        external_task_ids: Collection[str] | None = None,
        external_task_group_id: str | None = None,
        allowed_states: Iterable[str] | None = None,
        skipped_states: Iterable[str] | None = None,
        failed_states: Iterable[str] | None = None,
        execution_delta: timedelta | None = None,
        execution_date_fn: Callable[..., Any] | None = None,
        check_existence: bool = False,
        poll_interval: float | None = None,
        deferrable: bool = False,
        **kwargs: Any,
    ) -> None:
        if poll_interval is not None:
            warnings.warn(
                "Parameter `poll_interval` is deprecated and will be removed in a future release. "
                "Use `poke_interval` instead.",
                DeprecationWarning,
                stacklevel=2,
            )
            kwargs.setdefault("poke_interval", poll_interval)
        super().__init__(**kwargs)
        self.mode = "reschedule"  # every poke is an attempt of its own: see the module docstring
        self.allowed_states = _names(allowed_states) if allowed_states else ["success"]
        self.skipped_states = _names(skipped_states) if skipped_states else []
        self.failed_states = _names(failed_states) if failed_states else []
        every = [*self.allowed_states, *self.skipped_states, *self.failed_states]
        if len(set(every)) != len(every):
            self._refuse("Duplicate values provided across allowed_states, skipped_states and failed_states.")
        ids = list(external_task_ids) if external_task_ids else None
        either = "use external_task_id or external_task_ids or external_task_group_id."
        if external_task_id is not None and ids is not None:
            self._refuse(
                "Only one of `external_task_id` or `external_task_ids` may be provided to"
                " ExternalTaskSensor; " + either
            )
        if external_task_id is not None:
            ids = [external_task_id]
        if external_task_group_id is not None and ids is not None:
            self._refuse(
                "Only one of `external_task_group_id` or `external_task_ids` may be provided to"
                " ExternalTaskSensor; " + either
            )
        valid = {_name(s) for s in (TASK_STATES if ids or external_task_group_id else DAG_RUN_STATES)}
        if not set(every) <= valid:
            if ids or external_task_group_id:
                self._refuse(
                    "Valid values for `allowed_states`, `skipped_states` and `failed_states` when"
                    " `external_task_id` or `external_task_ids` or `external_task_group_id` is not `None`:"
                    f" {TASK_STATES}"
                )
            self._refuse(
                "Valid values for `allowed_states`, `skipped_states` and `failed_states` when"
                f" `external_task_id` and `external_task_group_id` is `None`: {DAG_RUN_STATES}"
            )
        if execution_delta is not None and execution_date_fn is not None:
            self._refuse(
                "Only one of `execution_delta` or `execution_date_fn` may be provided to ExternalTaskSensor;"
                " not both."
            )
        self.execution_delta = execution_delta
        self.execution_date_fn = execution_date_fn
        self.external_dag_id = external_dag_id
        self.external_task_id = external_task_id
        self.external_task_ids = ids
        self.external_task_group_id = external_task_group_id
        self.check_existence = bool(check_existence)
        self.deferred = bool(deferrable)
        """Airflow would defer to its WorkflowTrigger: kdag waits the same way, with that path's messages."""
        self.deferrable = False  # so that kdag compile runs it: no triggerer is needed
        self.external_dates_filter: str | None = None
        self._asked: dict[str, Any] = {}

    def _refuse(self, message: str) -> NoReturn:
        raise DagDefinitionError(f"task '{self.task_id}': {message}")

    @property
    def poll_interval(self) -> float:
        """Deprecated alias of ``poke_interval``."""
        return self.poke_interval

    def execute(self, context: Any) -> Any:
        _push_link(self, context)
        self._asked = self.question(context)
        if not context["ti"].external_runs:
            self.log.info("Asking about the runs of DAG %s", self.external_dag_id)
            raise ExternalRunsQuestion(self._asked)
        try:
            return super().execute(context)
        except AirflowRescheduleException as err:
            if isinstance(err, RunQuestion):
                raise
            raise ExternalRunsQuestion(self._asked, err.reschedule_date) from None

    def question(self, context: Mapping[str, Any]) -> dict[str, Any]:
        """What this poke asks: the DAG, the tasks or group, the logical dates (RFC 3339 UTC, to the
        second)."""
        dates = self._dates(context)
        self.external_dates_filter = ",".join(d.isoformat() for d in dates)
        asked: dict[str, Any] = {"dagId": str(self.external_dag_id)}
        if self.external_task_ids:
            asked["taskIds"] = [str(t) for t in self.external_task_ids]
        if self.external_task_group_id:
            asked["taskGroupId"] = str(self.external_task_group_id)
        asked["logicalDates"] = [d.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") for d in dates]
        return asked

    def _dates(self, context: Mapping[str, Any]) -> list[datetime]:
        logical_date = context.get("logical_date")
        if not isinstance(logical_date, datetime):
            raise ValueError("Either `logical_date` or `dag_run.run_after` must be provided in the context")
        if self.execution_delta:
            dates: Any = [logical_date - self.execution_delta]
        elif self.execution_date_fn:
            kwargs = {k: v for k, v in context.items() if k not in ("execution_date", "logical_date")}
            kwargs["context"] = context
            fn = self.execution_date_fn
            result = fn(logical_date, **callable_kwargs(fn, [logical_date], kwargs))
            dates = result if isinstance(result, list) else [result]
        else:
            dates = [logical_date]
        for date in dates:
            if not isinstance(date, datetime):
                raise TypeError(f"execution_date_fn must return datetimes, got {type(date).__name__}")
        return [d if d.tzinfo is not None else d.replace(tzinfo=UTC) for d in dates]

    def poke(self, context: Any) -> bool:
        ids = self.external_task_ids
        if ids and len(ids) > len(set(ids)):
            raise ValueError("Duplicate task_ids passed in external_task_ids parameter")
        dag, group, dates = self.external_dag_id, self.external_task_group_id, self.external_dates_filter
        if ids:
            self.log.info("Poking for tasks %s in dag %s on %s ... ", ids, dag, dates)
        elif group:
            self.log.info("Poking for task_group '%s' in dag '%s' on %s ... ", group, dag, dates)
        else:
            self.log.info("Poking for DAG '%s' on %s ... ", dag, dates)
        answer = context["ti"].external_runs
        if answer.get("asked") != self._asked:
            # An answer to an earlier poke's question (execution_date_fn gave other dates): ask again.
            self.log.info("The answer is to another question; asking again")
            return False
        if answer.get("error"):
            raise AirflowException(str(answer["error"]))
        self._check(answer)
        runs = [r for r in answer.get("runs") or [] if isinstance(r, Mapping)]
        if self.failed_states and self._count(runs, self.failed_states) > 0:
            self._failed()
        if self.skipped_states and self._count(runs, self.skipped_states) > 0:
            self._skipped()
        return self._count(runs, self.allowed_states) == len(self._asked["logicalDates"])

    def _check(self, answer: Mapping[str, Any]) -> None:
        """``check_existence`` (as Airflow 2 and the parameter's documentation: Airflow 3.3 skips it); and a
        task group that cannot be found, which Airflow 3's API refuses whatever ``check_existence`` says."""
        dag, group = self.external_dag_id, self.external_task_group_id
        if self.check_existence:
            if not answer.get("dagExists"):
                raise ExternalDagNotFoundError(f"The external DAG {dag} does not exist.")
            missing = answer.get("missingTasks") or []
            if missing:
                what = f"The external task {missing[0]} in DAG {dag}"
                raise ExternalTaskNotFoundError(f"{what} does not exist.")
            if group and not answer.get("groupExists"):
                raise ExternalTaskGroupNotFoundError(
                    f"The external task group '{group}' in DAG '{dag}' does not exist."
                )
        if group and not answer.get("dagExists"):
            raise AirflowException(f"The Dag with ID: `{dag}` was not found")
        if group and not answer.get("groupExists"):
            raise AirflowException(f"Task group {group} not found in DAG {dag}")

    def _count(self, runs: Sequence[Mapping[str, Any]], states: Sequence[str]) -> float:
        """Airflow's count: task instances in ``states`` over the number of tasks; runs whose group is all
        in ``states``; runs in ``states``."""
        wanted = set(states)
        if self.external_task_ids:
            instances = sum(
                n
                for run in runs
                for task_id in self.external_task_ids
                for state, n in (_tasks(run).get(task_id) or {}).items()
                if state in wanted
            )
            count = instances / len(self.external_task_ids)
            return int(count) if self.deferred else count  # the trigger's rounding
        if self.external_task_group_id:
            matched = 0
            for run in runs:
                seen = [s for counts in _tasks(run).values() for s, n in counts.items() if n > 0]
                matched += bool(seen) and all(s in wanted for s in seen)
            return matched
        return sum(1 for run in runs if run.get("state") in wanted)

    def _failed(self) -> None:
        ids, group, dag = self.external_task_ids, self.external_task_group_id, self.external_dag_id
        if self.deferred:
            if self.soft_fail:
                raise AirflowSkipException("External job has failed skipping.")
            raise ExternalDagFailedError("External job has failed.")
        if ids:
            what = f"Some of the external tasks {ids} in DAG {dag} failed."
            error: AirflowException = ExternalTaskFailedError(what)
        elif group:
            what = f"The external task_group '{group}' in DAG '{dag}' failed."
            error = ExternalTaskGroupFailedError(what)
        else:
            what = f"The external DAG {dag} failed."
            error = ExternalDagFailedError(what)
        if self.soft_fail:
            raise AirflowSkipException(f"{what} Skipping due to soft_fail.")
        raise error

    def _skipped(self) -> None:
        ids, group, dag = self.external_task_ids, self.external_task_group_id, self.external_dag_id
        if self.deferred:
            raise AirflowSkipException("External job has skipped skipping.")
        if ids:
            what = f"Some of the external tasks {ids} in DAG {dag}"
        elif group:
            what = f"The external task_group '{group}' in DAG {dag}"
        else:
            what = f"The external DAG {dag}"
        raise AirflowSkipException(f"{what} reached a state in our states-to-skip-on list. Skipping.")


class ExternalTaskMarker(EmptyOperator):
    """Marks that a task of another DAG depends on this one; an ``EmptyOperator`` at run time (see the
    module docstring). Its arguments are checked as Airflow checks them."""

    template_fields: Sequence[str] = ("external_dag_id", "external_task_id", "logical_date")
    ui_color = "#4db7db"
    operator_extra_links = (ExternalDagLink(),)

    def __init__(
        self,
        *,
        external_dag_id: str,
        external_task_id: str,
        logical_date: str | datetime | None = "{{ logical_date.isoformat() }}",
        recursion_depth: int = 10,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.external_dag_id = external_dag_id
        self.external_task_id = external_task_id
        if isinstance(logical_date, datetime):
            self.logical_date: str = logical_date.isoformat()
        elif isinstance(logical_date, str):
            self.logical_date = logical_date
        else:
            raise DagDefinitionError(
                f"task '{self.task_id}': Expected str or datetime.datetime type for logical_date."
                f" Got {type(logical_date)}"
            )
        if recursion_depth <= 0:
            raise DagDefinitionError(f"task '{self.task_id}': recursion_depth should be a positive integer")
        self.recursion_depth = recursion_depth

    def execute(self, context: Any) -> Any:
        _push_link(self, context)
        return None


def _name(state: Any) -> str:
    """A state as an answer spells it: its value (``TaskInstanceState.SUCCESS`` is ``success``), None as
    ``none``."""
    return NOT_STARTED if state is None else str(getattr(state, "value", state))


def _names(states: Iterable[Any]) -> list[str]:
    return [_name(s) for s in states]


def _tasks(run: Mapping[str, Any]) -> Mapping[str, Mapping[str, int]]:
    tasks = run.get("tasks")
    return tasks if isinstance(tasks, Mapping) else {}
