"""TriggerDagRunOperator in the runner (`kdag_runner/airflow/trigger_dagrun.py`): a try's first attempt asks
for the run (up for reschedule, `triggerDagRun` in the report), the next attempt reads the answer
(`KDAG_TRIGGERED_RUN`) and ends as Airflow 3.3.2's task runner ends `DagRunTriggerException`
(`airflow.sdk.execution_time.task_runner._handle_trigger_dag_run`): the XComs it pushes (`trigger_run_id`,
`_link_TriggerDagRunLink`), skip or failure for a run that exists, and waiting by reschedule."""

from __future__ import annotations

import json
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kdag_runner.airflow import DAG, DagDefinitionError, TriggerDagRunOperator
from kdag_runner.airflow.task_runner import (
    FAILED,
    SKIPPED,
    SUCCESS,
    UP_FOR_RESCHEDULE,
    UP_FOR_RETRY,
    run_task,
)
from kdag_runner.airflow.trigger_dagrun import DagRunTriggerRequest
from kdag_runner.report import EXIT_RESCHEDULE, EXIT_TASK_FAILED
from kdag_runner.xcom import TaskInstance

from . import runner_support
from .runner_support import pushed, run_dag_file

LINK = "_link_TriggerDagRunLink"


def prepared(
    tmp_path: Path, operator: TriggerDagRunOperator, answer: dict[str, Any] | None = None
) -> tuple[dict[str, Any], TaskInstance]:
    extra = {"KDAG_TRIGGERED_RUN": json.dumps(answer)} if answer is not None else {}
    return runner_support.prepared(tmp_path, operator, extra=extra)


def trigger(**kwargs: Any) -> TriggerDagRunOperator:
    with DAG("controller"):
        return TriggerDagRunOperator(task_id="fire", trigger_dag_id="target", **kwargs)


def test_the_first_attempt_asks_for_the_run_with_rendered_fields(tmp_path: Path) -> None:
    op = trigger(
        conf={"message": "{{ run_id }}"},
        trigger_run_id="run-of-{{ ds_nodash }}",
        logical_date="{{ ds }}",
        reset_dag_run=True,
        wait_for_completion=True,
    )
    ctx, ti = prepared(tmp_path, op)
    outcome = run_task(op, ctx)
    assert outcome.state == UP_FOR_RESCHEDULE
    assert isinstance(outcome.error, DagRunTriggerRequest)
    assert outcome.error.trigger_request == {
        "dagId": "target",
        "conf": {"message": "etl-run-1"},
        "runId": "run-of-20240305",
        "logicalDate": "2024-03-05T00:00:00Z",
        "reset": True,
        "wait": True,
    }
    assert pushed(ti) == {}


def test_a_triggered_run_pushes_airflows_xcoms_and_succeeds(tmp_path: Path) -> None:
    op = trigger(conf={"message": "Hello World"})
    ctx, ti = prepared(tmp_path, op, {"runId": "target-triggered-1", "state": "queued"})
    assert run_task(op, ctx).state == SUCCESS
    assert pushed(ti) == {
        LINK: "/dags/target/runs/target-triggered-1",
        "trigger_run_id": "target-triggered-1",
    }


def test_a_run_that_exists_fails_without_a_retry_or_skips(tmp_path: Path) -> None:
    op = trigger(trigger_run_id="fixed", retries=3)
    ctx, ti = prepared(tmp_path, op, {"runId": "fixed", "exists": True})
    outcome = run_task(op, ctx)
    assert outcome.state == FAILED  # Airflow 3 fails it at once, retries left or not
    assert str(outcome.error) == "A run already exists for Dag 'target' with run_id 'fixed'"
    assert pushed(ti) == {LINK: "/dags/target/runs/fixed"}
    op = trigger(trigger_run_id="fixed", skip_when_already_exists=True)
    ctx, ti = prepared(tmp_path / "skip", op, {"runId": "fixed", "exists": True})
    assert run_task(op, ctx).state == SKIPPED
    assert pushed(ti) == {LINK: "/dags/target/runs/fixed"}


def test_an_error_fails_the_task_with_its_message_and_retries_apply(tmp_path: Path) -> None:
    op = trigger(retries=1)
    ctx, _ = prepared(tmp_path, op, {"error": "DAG 'target' does not exist in namespace 'team'"})
    outcome = run_task(op, ctx)
    assert outcome.state == UP_FOR_RETRY
    assert str(outcome.error) == "DAG 'target' does not exist in namespace 'team'"


def test_waiting_reschedules_until_an_allowed_or_failed_state(tmp_path: Path) -> None:
    op = trigger(wait_for_completion=True, poke_interval=30)
    before = datetime.now(UTC)
    ctx, ti = prepared(tmp_path, op, {"runId": "r", "state": "running"})
    outcome = run_task(op, ctx)
    assert outcome.state == UP_FOR_RESCHEDULE and not isinstance(outcome.error, DagRunTriggerRequest)
    at = outcome.error.reschedule_date  # type: ignore[union-attr]
    assert before + timedelta(seconds=30) <= at <= datetime.now(UTC) + timedelta(seconds=30)
    assert pushed(ti) == {LINK: "/dags/target/runs/r", "trigger_run_id": "r"}
    ctx, _ = prepared(tmp_path / "2", op, {"runId": "r", "state": "success"})
    assert run_task(op, ctx).state == SUCCESS
    ctx, _ = prepared(tmp_path / "3", op, {"runId": "r", "state": "failed"})
    outcome = run_task(op, ctx)
    assert outcome.state == FAILED and str(outcome.error) == "target failed with failed state failed"
    custom = trigger(wait_for_completion=True, allowed_states=["failed"], failed_states=["success"])
    ctx, _ = prepared(tmp_path / "4", custom, {"runId": "r", "state": "failed"})
    assert run_task(custom, ctx).state == SUCCESS


def test_arguments_are_checked_when_the_dag_file_loads() -> None:
    with pytest.raises(
        DagDefinitionError, match="task 'fire': allowed_states: 'done' is not a DAG run state"
    ):
        trigger(allowed_states=["done"])
    with pytest.raises(DagDefinitionError, match="task 'fire': run_after is not supported by kdag"):
        trigger(run_after="2026-01-01")
    with pytest.raises(DagDefinitionError, match="task 'fire': poke_interval must be a number of seconds"):
        trigger(poke_interval="soon")


def test_a_conf_that_is_not_a_json_object_fails_the_task(tmp_path: Path) -> None:
    op = trigger(conf={"when": datetime(2026, 1, 1)})
    ctx, _ = prepared(tmp_path, op)
    outcome = run_task(op, ctx)
    assert outcome.state == FAILED and "conf parameter should be JSON Serializable" in str(outcome.error)
    op = trigger(conf='{"n": 1}')  # a JSON string is parsed, as Airflow does
    ctx, _ = prepared(tmp_path / "2", op)
    outcome = run_task(op, ctx)
    assert outcome.error.trigger_request["conf"] == {"n": 1}  # type: ignore[union-attr]


DAG_FILE = """
from datetime import datetime

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import DAG

with DAG("controller", schedule=None, start_date=datetime(2026, 1, 1)):
    TriggerDagRunOperator(task_id="fire", trigger_dag_id="target", conf={"n": 3})
    TriggerDagRunOperator(task_id="huge", trigger_dag_id="target", conf={"blob": "x" * 5000})
"""


def test_the_runner_reports_the_request_then_reads_the_answer(tmp_path: Path) -> None:
    dag_file = tmp_path / "controller.py"
    dag_file.write_text(textwrap.dedent(DAG_FILE))
    first = run_dag_file(tmp_path / "1", dag_file, [("fire", ())], dag_id="controller")["fire"]
    assert first.returncode == EXIT_RESCHEDULE
    assert first.termination is not None
    assert first.termination["triggerDagRun"] == {
        "dagId": "target",
        "conf": {"n": 3},
        "reset": False,
        "wait": False,
    }
    assert first.termination["reschedule"].endswith("Z")
    assert "kdag: asking to trigger DAG 'target'" in first.stderr
    answer = json.dumps({"runId": "target-triggered-1", "state": "queued"})
    second = run_dag_file(
        tmp_path / "2",
        dag_file,
        [("fire", ())],
        dag_id="controller",
        attempt=2,
        extra={"KDAG_RESCHEDULES": "1", "KDAG_TRIGGERED_RUN": answer},
    )["fire"]
    assert second.returncode == 0, second.stderr
    assert second.xcoms == {
        LINK: "/dags/target/runs/target-triggered-1",
        "trigger_run_id": "target-triggered-1",
    }


def test_a_request_too_long_for_the_termination_message_fails_the_attempt(tmp_path: Path) -> None:
    dag_file = tmp_path / "controller.py"
    dag_file.write_text(textwrap.dedent(DAG_FILE))
    result = run_dag_file(tmp_path, dag_file, [("huge", ())], dag_id="controller")["huge"]
    assert result.returncode == EXIT_TASK_FAILED
    assert result.termination is not None and "triggerDagRun" not in result.termination
    assert result.termination["error"].startswith("the request to trigger DAG 'target' takes ")
    assert result.termination["error"].endswith("of the 4096-byte termination message: pass a smaller conf")


@pytest.mark.parametrize(
    "module", ["airflow.providers.standard.operators.trigger_dagrun", "airflow.operators.trigger_dagrun"]
)
def test_airflow_import_paths_serve_the_operator(module: str) -> None:
    from kdag_runner import compat

    compat.install()
    try:
        imported = __import__(module, fromlist=["TriggerDagRunOperator"])
        assert imported.TriggerDagRunOperator is TriggerDagRunOperator
    finally:
        compat.uninstall()


def test_deferrable_waits_by_reschedule_so_compile_runs_it() -> None:
    op = trigger(deferrable=True, wait_for_completion=True)
    assert (op.deferrable, op.deferred) == (False, True)
