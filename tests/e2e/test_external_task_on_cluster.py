"""ExternalTaskSensor and ExternalTaskMarker on the cluster: a parent DAG whose marker runs after a slow task,
and a child DAG whose reschedule-mode sensor waits for that marker, both triggered at the same logical date.
The sensor's first attempt asks (exit code 5, `externalRuns` in its termination message, recorded in the
TaskRun's `status.externalRuns`); the controller reads the parent's DAGRun at that logical date when it
starts each later attempt and gives the answer in `KDAG_EXTERNAL_RUNS`; the child succeeds only after the
parent's marker succeeded. The task ServiceAccount may not read DAGRuns: only the controller does."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from controller_support import ControllerProcess
from e2e_helpers import (
    apply_dags,
    env_of,
    pods,
    task_account_can_i,
    taskruns,
    time_of,
    trigger,
    wait_for_run,
    write_file,
    xcoms,
)
from kdag_runner import store

pytestmark = pytest.mark.cluster

LOGICAL_DATE = datetime(2026, 11, 16, tzinfo=UTC)

DAG_FILE = """
from datetime import datetime

from airflow.providers.standard.sensors.external_task import ExternalTaskMarker, ExternalTaskSensor
from airflow.sdk import DAG, task

START = datetime(2026, 1, 1)

with DAG("external_parent", schedule=None, start_date=START):

    @task
    def slow():
        import time

        time.sleep(20)

    slow() >> ExternalTaskMarker(
        task_id="parent_task", external_dag_id="external_child", external_task_id="child_task"
    )

with DAG("external_child", schedule=None, start_date=START):
    ExternalTaskSensor(
        task_id="child_task",
        external_dag_id="external_parent",
        external_task_id="parent_task",
        allowed_states=["success"],
        failed_states=["failed", "skipped"],
        mode="reschedule",
        poke_interval=3,
        timeout=600,
    )
"""


def test_the_child_waits_for_the_parents_task_at_the_same_logical_date(
    kubeconfig: str, controller: ControllerProcess, e2e_namespace: str, tmp_path: Path
) -> None:
    path = write_file(tmp_path / "external.py", DAG_FILE)
    parent, child = apply_dags(kubeconfig, e2e_namespace, path, "external_parent", "external_child")
    # The child first: its sensor asks before the parent's run exists, then waits for it.
    child_run = trigger(kubeconfig, e2e_namespace, child.name, logical_date=LOGICAL_DATE)
    parent_run = trigger(kubeconfig, e2e_namespace, parent.name, logical_date=LOGICAL_DATE)
    done = wait_for_run(kubeconfig, e2e_namespace, child.name, timeout=300)
    assert done["status"]["phase"] == "Succeeded", done["status"]
    parent_done = wait_for_run(kubeconfig, e2e_namespace, parent.name, timeout=120)
    assert parent_done["status"]["phase"] == "Succeeded", parent_done["status"]

    # Least privilege: the task pods' ServiceAccount may neither read nor list DAGRuns.
    for verb in ("get", "list"):
        answer = task_account_can_i(kubeconfig, e2e_namespace, verb, "dagruns.kdag.dev")
        assert answer.stdout.strip() == "no", answer

    sensor = taskruns(kubeconfig, e2e_namespace, child_run)["child_task"]
    marker = taskruns(kubeconfig, e2e_namespace, parent_run)["parent_task"]
    # The child's sensor succeeded after the parent's task did, having poked more than once.
    assert time_of(sensor["status"]["finishTime"]) >= time_of(marker["status"]["finishTime"])
    assert sensor["status"]["reschedules"] >= 2
    assert sensor["status"]["externalRuns"] == {
        "dagId": "external_parent",
        "taskIds": ["parent_task"],
        "logicalDates": ["2026-11-16T00:00:00Z"],
    }
    sensing = pods(kubeconfig, e2e_namespace, child_run)  # the child's only task: the sensor's pods
    newest = max(sensing, key=lambda p: int(p["metadata"]["labels"]["kdag.dev/attempt"]))
    answer = json.loads(env_of(newest)["KDAG_EXTERNAL_RUNS"])
    assert answer["dagExists"] is True and answer["missingTasks"] == []
    assert [(r["runId"], r["tasks"]) for r in answer["runs"]] == [
        (parent_run, {"parent_task": {"success": 1}})
    ]

    # Both push Airflow's operator link; the marker nothing else (an EmptyOperator).
    assert store.decode(xcoms(kubeconfig, e2e_namespace, parent_run, "parent_task")) == {
        "_link_ExternalDagLink": f"/dags/external_child/runs/{parent_run}"
    }
    assert store.decode(xcoms(kubeconfig, e2e_namespace, child_run, "child_task")) == {
        "_link_ExternalDagLink": f"/dags/external_parent/runs/{child_run}"
    }
