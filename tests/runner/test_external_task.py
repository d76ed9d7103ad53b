"""ExternalTaskSensor and ExternalTaskMarker in the runner (`kdag_runner/airflow/external_task.py`), against
Airflow 3.3.2's standard provider (`providers/standard/sensors/external_task.py`): the marker is an
EmptyOperator that checks its arguments and pushes `_link_ExternalDagLink`; the sensor's first attempt asks
(up for reschedule at once, `externalRuns` in the report) and each later attempt counts the answer in
`KDAG_EXTERNAL_RUNS` as Airflow's `_poke_af3` counts task instances, task groups and runs."""

from __future__ import annotations

import json
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kdag_runner.airflow import DAG, DagDefinitionError, ExternalTaskMarker, ExternalTaskSensor, TaskGroup
from kdag_runner.airflow.external_task import ExternalRunsQuestion
from kdag_runner.airflow.task_runner import (
    FAILED,
    SKIPPED,
    SUCCESS,
    UP_FOR_RESCHEDULE,
    UP_FOR_RETRY,
    run_task,
)
from kdag_runner.report import EXIT_OK, EXIT_RESCHEDULE
from kdag_runner.xcom import TaskInstance

from . import runner_support
from .runner_support import LOGICAL_DATE, RUN_ID, pushed, run_dag_file

LINK = "_link_ExternalDagLink"
ASKED = {"dagId": "parent", "taskIds": ["done"], "logicalDates": [LOGICAL_DATE]}


def prepared(
    tmp_path: Path, operator: Any, answer: dict[str, Any] | None = None, **extra: str
) -> tuple[dict[str, Any], TaskInstance]:
    env = dict(extra)
    if answer is not None:
        env |= {"KDAG_EXTERNAL_RUNS": json.dumps(answer), "KDAG_RESCHEDULES": "1"}
        env.setdefault("KDAG_TASK_START", datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    return runner_support.prepared(tmp_path, operator, attempt=2, extra=env)


def sensor(**kwargs: Any) -> ExternalTaskSensor:
    kwargs.setdefault("external_task_id", "done")
    with DAG("child"):
        return ExternalTaskSensor(task_id="wait", external_dag_id="parent", poke_interval=30, **kwargs)


def answered(asked: dict[str, Any] = ASKED, *runs: dict[str, Any], **facts: Any) -> dict[str, Any]:
    return {"asked": asked, "dagExists": True, "runs": list(runs), **facts}


def run(tasks: dict[str, dict[str, int]], state: str = "running", date: str = LOGICAL_DATE) -> dict[str, Any]:
    return {"runId": "parent-1", "logicalDate": date, "state": state, "tasks": tasks}


def test_the_marker_is_an_empty_operator_that_pushes_its_link(tmp_path: Path) -> None:
    with DAG("parent"):
        marker = ExternalTaskMarker(task_id="mark", external_dag_id="child", external_task_id="wait")
    ctx, ti = prepared(tmp_path, marker)
    assert run_task(marker, ctx).state == SUCCESS
    assert pushed(ti) == {LINK: f"/dags/child/runs/{RUN_ID}"}
    assert marker.logical_date == "2024-03-05T06:07:08+00:00"  # the default template, rendered
    assert marker.recursion_depth == 10


def test_the_markers_arguments_are_checked_as_airflow_checks_them() -> None:
    with DAG("parent"):
        when = ExternalTaskMarker(
            task_id="a", external_dag_id="c", external_task_id="t", logical_date=datetime(2026, 1, 2)
        )
        assert when.logical_date == "2026-01-02T00:00:00"
        with pytest.raises(
            DagDefinitionError, match="task 'b': recursion_depth should be a positive integer"
        ):
            ExternalTaskMarker(task_id="b", external_dag_id="c", external_task_id="t", recursion_depth=0)
        with pytest.raises(
            DagDefinitionError, match=r"Expected str or datetime\.datetime type for logical_date"
        ):
            ExternalTaskMarker(task_id="c", external_dag_id="c", external_task_id="t", logical_date=5)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"external_task_ids": ["a"]}, "Only one of `external_task_id` or `external_task_ids`"),
        ({"external_task_group_id": "g"}, "Only one of `external_task_group_id` or `external_task_ids`"),
        ({"failed_states": ["success"]}, "Duplicate values provided across allowed_states"),
        ({"allowed_states": ["bogus"]}, "`failed_states` when `external_task_id` or `external_task_ids`"),
        ({"external_task_id": None, "failed_states": ["skipped"]}, "`external_task_group_id` is `None`"),
        ({"execution_delta": timedelta(1), "execution_date_fn": min}, "Only one of `execution_delta` or"),
    ],
)  # fmt: skip
def test_the_sensors_arguments_are_checked_as_airflow_checks_them(
    kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(DagDefinitionError, match=r"^task 'wait': ") as caught:
        sensor(**kwargs)
    assert message in str(caught.value)


def test_every_mode_reschedules_and_deferrable_compiles() -> None:
    assert sensor().mode == sensor(mode="poke").mode == "reschedule"
    deferred = sensor(deferrable=True)
    assert deferred.deferrable is False and deferred.deferred is True
    assert sensor(external_task_id=None, allowed_states=["failed"]).allowed_states == ["failed"]


def test_the_first_attempt_asks_at_once_and_pushes_the_link(tmp_path: Path) -> None:
    op = sensor()
    ctx, ti = prepared(tmp_path, op)
    outcome = run_task(op, ctx)
    assert outcome.state == UP_FOR_RESCHEDULE
    assert isinstance(outcome.error, ExternalRunsQuestion)
    assert outcome.error.body == ASKED
    assert outcome.error.reschedule_date <= datetime.now(UTC)  # type: ignore[operator]
    assert ti.xcom_pull(key=LINK) == f"/dags/parent/runs/{RUN_ID}"


def test_execution_delta_and_execution_date_fn_give_the_dates(tmp_path: Path) -> None:
    op = sensor(external_task_id=None, external_task_group_id="g", execution_delta=timedelta(hours=6))
    ctx, _ = prepared(tmp_path, op)
    assert op.question(ctx) == {
        "dagId": "parent",
        "taskGroupId": "g",
        "logicalDates": ["2024-03-05T00:07:08Z"],
    }

    def both(logical_date: datetime, ds: str) -> list[datetime]:
        assert ds == "2024-03-05"
        return [logical_date, logical_date - timedelta(days=1)]

    op = sensor(external_task_id=None, execution_date_fn=both)
    ctx, _ = prepared(tmp_path, op)
    assert op.question(ctx)["logicalDates"] == [LOGICAL_DATE, "2024-03-04T06:07:08Z"]


def test_the_task_succeeds_once_the_tasks_are_in_an_allowed_state(tmp_path: Path) -> None:
    op = sensor()
    ctx, _ = prepared(tmp_path, op, answered(ASKED, run({"done": {"success": 1}})))
    assert run_task(op, ctx).state == SUCCESS


def test_not_done_pokes_again_after_the_interval_asking_again(tmp_path: Path) -> None:
    op = sensor()
    for answer in (
        answered(ASKED),  # no run at that date yet
        answered(ASKED, run({"done": {"running": 1}})),
        answered({**ASKED, "logicalDates": ["2020-01-01T00:00:00Z"]}, run({"done": {"success": 1}})),
    ):
        ctx, _ = prepared(tmp_path, op, answer)
        outcome = run_task(op, ctx)
        assert outcome.state == UP_FOR_RESCHEDULE
        assert isinstance(outcome.error, ExternalRunsQuestion) and outcome.error.body == ASKED
        wait = outcome.error.reschedule_date - datetime.now(UTC)  # type: ignore[operator]
        assert timedelta(seconds=25) < wait <= timedelta(seconds=30)


def test_failed_and_skipped_states_end_the_wait(tmp_path: Path) -> None:
    failed = answered(ASKED, run({"done": {"failed": 1}}))
    op = sensor(failed_states=["failed"], retries=1)
    ctx, _ = prepared(tmp_path, op, failed)
    outcome = run_task(op, ctx)
    assert outcome.state == UP_FOR_RETRY  # an ordinary failure: retries apply
    assert str(outcome.error) == "Some of the external tasks ['done'] in DAG parent failed."
    assert type(outcome.error).__name__ == "ExternalTaskFailedError"

    op = sensor(failed_states=["failed"], soft_fail=True)
    ctx, _ = prepared(tmp_path, op, failed)
    outcome = run_task(op, ctx)
    assert outcome.state == SKIPPED
    assert str(outcome.error).endswith("failed. Skipping due to soft_fail.")

    op = sensor(skipped_states=["skipped"])
    ctx, _ = prepared(tmp_path, op, answered(ASKED, run({"done": {"skipped": 1}})))
    outcome = run_task(op, ctx)
    assert outcome.state == SKIPPED
    assert str(outcome.error) == (
        "Some of the external tasks ['done'] in DAG parent reached a state in our states-to-skip-on list."
        " Skipping."
    )

    op = sensor(external_task_id=None, failed_states=["failed"], deferrable=True)
    asked = {"dagId": "parent", "logicalDates": [LOGICAL_DATE]}
    ctx, _ = prepared(tmp_path, op, answered(asked, run({}, state="failed")))
    outcome = run_task(op, ctx)
    assert (outcome.state, str(outcome.error)) == (FAILED, "External job has failed.")


def test_task_instances_are_counted_as_airflow_counts_them(tmp_path: Path) -> None:
    # A mapped task's instances count one by one: three successes over one task are not "one run done"
    # in Airflow 3.3.2 either (count 3 != 1 date), so such a sensor waits; its task group does not.
    op = sensor()
    ctx, _ = prepared(tmp_path, op, answered(ASKED, run({"done": {"success": 3}})))
    assert run_task(op, ctx).state == UP_FOR_RESCHEDULE
    group = {"dagId": "parent", "taskGroupId": "g", "logicalDates": [LOGICAL_DATE]}
    op = sensor(external_task_id=None, external_task_group_id="g")
    done = run({"g.a": {"success": 3}, "g.b": {"success": 1}})
    ctx, _ = prepared(tmp_path, op, answered(group, done, groupExists=True))
    assert run_task(op, ctx).state == SUCCESS
    waiting = run({"g.a": {"success": 2, "none": 1}, "g.b": {"success": 1}})
    ctx, _ = prepared(tmp_path, op, answered(group, waiting, groupExists=True))
    assert run_task(op, ctx).state == UP_FOR_RESCHEDULE
    # Several tasks: the instances over the number of tasks, at every date asked.
    two = {"dagId": "parent", "taskIds": ["a", "b"], "logicalDates": [LOGICAL_DATE]}
    op = sensor(external_task_id=None, external_task_ids=["a", "b"])
    ctx, _ = prepared(tmp_path, op, answered(two, run({"a": {"success": 1}, "b": {"success": 1}})))
    assert run_task(op, ctx).state == SUCCESS


def test_a_whole_run_counts_by_its_state(tmp_path: Path) -> None:
    asked = {"dagId": "parent", "logicalDates": [LOGICAL_DATE]}
    op = sensor(external_task_id=None)
    ctx, _ = prepared(tmp_path, op, answered(asked, run({}, state="success")))
    assert run_task(op, ctx).state == SUCCESS
    ctx, _ = prepared(tmp_path, op, answered(asked, run({}, state="running")))
    assert run_task(op, ctx).state == UP_FOR_RESCHEDULE


def test_check_existence_and_a_missing_group_fail_the_poke(tmp_path: Path) -> None:
    op = sensor(check_existence=True)
    ctx, _ = prepared(tmp_path, op, {"asked": ASKED, "dagExists": False, "runs": []})
    outcome = run_task(op, ctx)
    assert (type(outcome.error).__name__, str(outcome.error)) == (
        "ExternalDagNotFoundError",
        "The external DAG parent does not exist.",
    )
    ctx, _ = prepared(tmp_path, op, answered(ASKED, missingTasks=["done"]))
    assert str(run_task(op, ctx).error) == "The external task done in DAG parent does not exist."
    # Without check_existence a missing DAG is waited for, as Airflow waits.
    op = sensor()
    ctx, _ = prepared(tmp_path, op, {"asked": ASKED, "dagExists": False, "runs": []})
    assert run_task(op, ctx).state == UP_FOR_RESCHEDULE
    # A task group Airflow 3's API cannot find fails the poke whatever check_existence says.
    group = {"dagId": "parent", "taskGroupId": "g", "logicalDates": [LOGICAL_DATE]}
    op = sensor(external_task_id=None, external_task_group_id="g")
    ctx, _ = prepared(tmp_path, op, answered(group, groupExists=False))
    assert str(run_task(op, ctx).error) == "Task group g not found in DAG parent"
    ctx, _ = prepared(tmp_path, op, {"asked": group, "error": "DAG 'parent' is ambiguous"})
    assert str(run_task(op, ctx).error) == "DAG 'parent' is ambiguous"


def test_the_timeout_counts_from_the_first_attempt(tmp_path: Path) -> None:
    long_ago = (datetime.now(UTC) - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    op = sensor(timeout=3600)
    ctx, _ = prepared(tmp_path, op, answered(ASKED), KDAG_TASK_START=long_ago)
    outcome = run_task(op, ctx)
    assert outcome.state == FAILED and type(outcome.error).__name__ == "AirflowSensorTimeout"
    op = sensor(timeout=3600, soft_fail=True)
    ctx, _ = prepared(tmp_path, op, answered(ASKED), KDAG_TASK_START=long_ago)
    assert run_task(op, ctx).state == SKIPPED


DAG_FILE = """
from datetime import datetime

from airflow.providers.standard.sensors.external_task import ExternalTaskSensor
from airflow.sdk import DAG

with DAG("child", schedule=None, start_date=datetime(2026, 1, 1)):
    ExternalTaskSensor(task_id="wait", external_dag_id="parent", external_task_id="done", poke_interval=5)
"""


def test_the_runner_reports_the_question_then_reads_the_answer(tmp_path: Path) -> None:
    dag_file = tmp_path / "child.py"
    dag_file.write_text(textwrap.dedent(DAG_FILE))
    first = run_dag_file(tmp_path / "1", dag_file, [("wait", ())], dag_id="child")["wait"]
    assert first.returncode == EXIT_RESCHEDULE, first.stderr
    assert first.termination is not None and first.termination["externalRuns"] == ASKED
    assert "kdag: asking about the runs of DAG 'parent'" in first.stderr
    answer = json.dumps(answered(ASKED, run({"done": {"success": 1}})))
    extra = {"KDAG_RESCHEDULES": "1", "KDAG_TASK_START": LOGICAL_DATE, "KDAG_EXTERNAL_RUNS": answer}
    second = run_dag_file(tmp_path / "2", dag_file, [("wait", ())], dag_id="child", attempt=2, extra=extra)
    assert second["wait"].returncode == EXIT_OK, second["wait"].stderr
    assert second["wait"].xcoms == {LINK: f"/dags/parent/runs/{RUN_ID}"}


@pytest.mark.parametrize(
    "module",
    [
        "airflow.providers.standard.sensors.external_task",
        "airflow.sensors.external_task",
        "airflow.sensors.external_task_sensor",
    ],
)
def test_airflow_import_paths_serve_the_classes(module: str) -> None:
    import importlib

    from kdag_runner import compat

    assert compat.install()
    try:
        imported = importlib.import_module(module)
        assert imported.ExternalTaskSensor is ExternalTaskSensor
        assert imported.ExternalTaskMarker is ExternalTaskMarker
        errors = importlib.import_module("airflow.providers.standard.exceptions")
        assert issubclass(errors.ExternalTaskFailedError, errors.AirflowExternalTaskSensorException)
    finally:
        compat.uninstall()


def test_a_group_sensor_in_a_task_group_keeps_its_own_id() -> None:
    with DAG("child"), TaskGroup("waits"):
        op = ExternalTaskSensor(task_id="g", external_dag_id="parent", external_task_group_id="g")
    assert op.task_id == "waits.g" and op.external_task_group_id == "g"
