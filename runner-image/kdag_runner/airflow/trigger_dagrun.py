"""``TriggerDagRunOperator``: start a run of another DAG (Airflow 3's, from the standard provider).

A task never creates the run itself (task pods hold no right to create DAGRuns: they run user code). It
asks, and whoever runs it answers in the next attempt's environment (docs/design.md, "Triggering
another DAG"):

1. The first attempt of a try renders the template fields and ends up for reschedule (runner exit code 5)
   with the request in its report: ``{"triggerDagRun": {"dagId", "runId"?, "conf", "logicalDate"?,
   "reset", "wait"}}``, raised here as ``DagRunTriggerRequest``.
2. The controller (or ``kdag run --local``) starts the run, or finds why it cannot, and starts the next
   attempt with ``KDAG_TRIGGERED_RUN`` set (``ti.triggered_run``): ``{"runId", "state"}`` for the run this
   task triggered (its state as Airflow names it: queued, running, success, failed), ``{"runId",
   "exists": true}`` for a run of that id someone else made, or ``{"error": "..."}``.
3. That attempt ends as Airflow 3's task runner ends ``DagRunTriggerException`` (``_handle_trigger_dag_run``):
   the ``_link_TriggerDagRunLink`` XCom is pushed once the run id is known; a run that already exists
   skips the task with ``skip_when_already_exists``, else fails it without a retry; otherwise
   ``trigger_run_id`` is pushed and the task succeeds, or with ``wait_for_completion`` it checks the run's
   state: in ``failed_states`` it fails (retries apply), in ``allowed_states`` it succeeds, else it ends up
   for reschedule again ``poke_interval`` seconds later (no pod is held while the other run works).

``deferrable=True`` waits the same way (kdag has no triggerer, and a reschedule holds nothing either).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from kdag_runner.airflow.exceptions import (
    AirflowException,
    AirflowFailException,
    AirflowRescheduleException,
    AirflowSkipException,
    DagDefinitionError,
    RunQuestion,
)
from kdag_runner.airflow.operators import BaseOperator

XCOM_RUN_ID = "trigger_run_id"
DAG_RUN_STATES = ("queued", "running", "success", "failed")
"""Airflow's ``DagRunState`` values: what ``allowed_states``/``failed_states`` may name."""


class DagIsPaused(AirflowException):
    """Airflow's: the DAG to trigger is paused (kdag DAGs are never paused, so it is never raised)."""

    def __init__(self, dag_id: str) -> None:
        super().__init__(dag_id)
        self.dag_id = dag_id

    def __str__(self) -> str:
        return f"Dag {self.dag_id} is paused"


class TriggerDagRunLink:
    """Airflow's operator link to the triggered run; its XCom (``_link_TriggerDagRunLink``) is pushed as
    Airflow 3 pushes it: ``/dags/{dag_id}/runs/{run_id}``."""

    name = "Triggered DAG"

    @property
    def xcom_key(self) -> str:
        return f"_link_{type(self).__name__}"

    def get_link(self, operator: Any, *, ti_key: Any = None) -> str:
        run_id = getattr(operator, "triggered_run_id", None) or ""
        return dagrun_url(str(getattr(operator, "trigger_dag_id", "")), str(run_id))


def dagrun_url(dag_id: str, run_id: str) -> str:
    """Airflow 3's ``build_airflow_dagrun_url`` with no base URL: the run's page in its UI."""
    return f"/dags/{dag_id}/runs/{run_id}"


class DagRunTriggerRequest(RunQuestion):
    """A try's first attempt asks for the run (``trigger_request``); the next attempt, started at once
    after the controller answered, reads the answer (``ti.triggered_run``)."""

    report_key = "triggerDagRun"

    @property
    def trigger_request(self) -> dict[str, Any]:
        """The request: the report's ``triggerDagRun``."""
        return self.body

    def describe(self) -> str:
        return f"asking to trigger DAG {self.body.get('dagId')!r}"

    def too_long(self, size: int, limit: int) -> str:
        return (
            f"the request to trigger DAG {self.body.get('dagId')!r} takes {size} bytes of the"
            f" {limit}-byte termination message: pass a smaller conf"
        )


class TriggerDagRunOperator(BaseOperator):
    """Start a run of the DAG ``trigger_dag_id`` (Airflow's ``TriggerDagRunOperator``)."""

    template_fields: Sequence[str] = (
        "trigger_dag_id",
        "trigger_run_id",
        "logical_date",
        "conf",
        "wait_for_completion",
        "skip_when_already_exists",
    )
    template_fields_renderers: ClassVar[dict[str, str]] = {"conf": "py"}
    ui_color = "#ffefeb"
    operator_extra_links = (TriggerDagRunLink(),)

    def __init__(
        self,
        *,
        trigger_dag_id: str,
        trigger_run_id: str | None = None,
        conf: dict[str, Any] | str | None = None,
        logical_date: str | datetime | None = None,
        run_after: str | datetime | None = None,
        reset_dag_run: bool = False,
        wait_for_completion: bool = False,
        poke_interval: int | float = 60,
        allowed_states: Sequence[str] | None = None,
        failed_states: Sequence[str] | None = None,
        skip_when_already_exists: bool = False,
        fail_when_dag_is_paused: bool = False,
        note: str | None = None,
        deferrable: bool = False,
        openlineage_inject_parent_info: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if run_after is not None:
            raise DagDefinitionError(
                f"task '{self.task_id}': run_after is not supported by kdag: a triggered run starts at once"
            )
        if isinstance(poke_interval, bool) or not isinstance(poke_interval, int | float) or poke_interval < 0:
            raise DagDefinitionError(
                f"task '{self.task_id}': poke_interval must be a number of seconds, got {poke_interval!r}"
            )
        self.trigger_dag_id = trigger_dag_id
        self.trigger_run_id = trigger_run_id
        self.conf = conf
        self.logical_date = logical_date
        self.reset_dag_run = bool(reset_dag_run)
        self.wait_for_completion = wait_for_completion
        self.poke_interval = poke_interval
        self.allowed_states = _states(self.task_id, "allowed_states", allowed_states or ["success"])
        self.failed_states = _states(
            self.task_id, "failed_states", ["failed"] if failed_states is None else failed_states
        )
        self.skip_when_already_exists = skip_when_already_exists
        # No pausing, notes or lineage in kdag; a deferral is a reschedule as waiting already is.
        self.fail_when_dag_is_paused = fail_when_dag_is_paused
        self.note = note
        self.deferred = bool(deferrable)
        self.deferrable = False  # so that kdag compile runs it: waiting needs no triggerer
        self.openlineage_inject_parent_info = openlineage_inject_parent_info
        self.triggered_run_id: str | None = None

    def execute(self, context: Any) -> Any:
        dag_id = str(self.trigger_dag_id)
        conf = _conf(self.conf)
        answer = getattr(context["ti"], "triggered_run", None) or {}
        if not answer:
            self.log.info("Triggering Dag Run. trigger_dag_id=%s", dag_id)
            raise DagRunTriggerRequest(self.request(dag_id, conf))
        if answer.get("error"):
            raise AirflowException(str(answer["error"]))
        run_id = str(answer.get("runId") or "")
        self.triggered_run_id = run_id
        ti = context["ti"]
        ti.xcom_push(key=TriggerDagRunLink().xcom_key, value=dagrun_url(dag_id, run_id))
        if answer.get("exists"):
            if self.skip_when_already_exists:
                raise AirflowSkipException(
                    "Dag Run already exists, skipping task as skip_when_already_exists is set to True."
                )
            raise AirflowFailException(f"A run already exists for Dag '{dag_id}' with run_id '{run_id}'")
        self.log.info("Dag Run triggered successfully. trigger_dag_id=%s run_id=%s", dag_id, run_id)
        ti.xcom_push(key=XCOM_RUN_ID, value=run_id)
        if not self.wait_for_completion:
            return None
        state = str(answer.get("state") or "")
        if state in self.failed_states:
            raise AirflowException(f"{dag_id} failed with failed state {state}")
        if state in self.allowed_states:
            self.log.info("DagRun finished with allowed state. dag_id=%s state=%s", dag_id, state)
            return None
        self.log.info(
            "Waiting for dag run to complete execution in allowed state. dag_id=%s run_id=%s state=%s",
            dag_id,
            run_id,
            state,
        )
        raise AirflowRescheduleException(datetime.now(UTC) + timedelta(seconds=self.poke_interval))

    def request(self, dag_id: str, conf: dict[str, Any]) -> dict[str, Any]:
        """What the first attempt of a try asks for (the report's ``triggerDagRun``)."""
        request: dict[str, Any] = {
            "dagId": dag_id,
            "conf": conf,
            "reset": self.reset_dag_run,
            "wait": bool(self.wait_for_completion),
        }
        if self.trigger_run_id:
            request["runId"] = str(self.trigger_run_id)
        when = _logical_date(self.logical_date)
        if when is not None:
            request["logicalDate"] = when.strftime("%Y-%m-%dT%H:%M:%SZ")
        return request


def _states(task_id: str, name: str, values: Sequence[Any]) -> list[str]:
    states = [str(getattr(v, "value", v)) for v in values]
    for state in states:
        if state not in DAG_RUN_STATES:
            raise DagDefinitionError(
                f"task '{task_id}': {name}: {state!r} is not a DAG run state ({', '.join(DAG_RUN_STATES)})"
            )
    return states


def _conf(value: Any) -> dict[str, Any]:
    """The conf as a JSON object (a string is parsed, as Airflow does); anything else fails the task."""
    try:
        conf = json.loads(value) if isinstance(value, str) and value else value
        json.dumps(conf)
    except (TypeError, ValueError):
        raise ValueError(f"conf parameter should be JSON Serializable: {value}") from None
    if conf is None:
        return {}
    if not isinstance(conf, Mapping):
        raise ValueError(f"conf must be a JSON object (a dict), got {type(conf).__name__}")
    return dict(conf)


def _logical_date(value: Any) -> datetime | None:
    """A logical date given as a datetime or an ISO 8601 string (naive means UTC); None: when the run is
    made (Airflow's ``utcnow()``)."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        when = value
    elif isinstance(value, str):
        try:
            when = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"logical_date {value!r} is not an ISO 8601 date or time") from None
    else:
        kind = type(value).__name__
        raise TypeError(f"logical_date must be a datetime, an ISO 8601 string or None, got {kind}")
    return (when if when.tzinfo is not None else when.replace(tzinfo=UTC)).astimezone(UTC)
