"""TriggerDagRunOperator on the cluster: the task's first attempt asks (exit code 5, `triggerDagRun` in its
termination message), the controller makes the DAGRun in the same namespace, labelled with the TaskRun and
try that asked, and starts the next attempt with `KDAG_TRIGGERED_RUN`; a task that waits polls the run's
phase by reschedule (no pod alive in between), a missing DAG fails the task naming it. The task's
ServiceAccount never gets the right to create a DAGRun: only the controller does."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from controller_support import ControllerProcess
from e2e_helpers import (
    apply_dags,
    env_of,
    get,
    pods,
    runs_of,
    task_account_can_i,
    taskruns,
    trigger,
    wait_for_run,
    wait_until,
    write_file,
    xcoms,
)
from kdag import names
from kdag_runner import store

pytestmark = pytest.mark.cluster

DAG_FILE = """
from datetime import datetime

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import DAG, Param, task

START = datetime(2026, 1, 1)

with DAG("trigger_target", schedule=None, start_date=START, params={"n": Param(1, type="integer")}):

    @task
    def double(params=None, dag_run=None):
        return {"double": params["n"] * 2, "run_type": dag_run.run_type}

    double()

with DAG("trigger_controller", schedule=None, start_date=START):
    TriggerDagRunOperator(task_id="fire", trigger_dag_id="trigger_target", conf={"n": 3})
    TriggerDagRunOperator(
        task_id="wait",
        trigger_dag_id="trigger_target",
        trigger_run_id="waited-for",
        conf={"n": 5},
        wait_for_completion=True,
        poke_interval=3,
    )
    TriggerDagRunOperator(task_id="missing", trigger_dag_id="no_such_dag")
"""


def test_the_controller_starts_the_run_a_task_asks_for(
    kubeconfig: str, controller: ControllerProcess, e2e_namespace: str, tmp_path: Path
) -> None:
    path = write_file(tmp_path / "triggers.py", DAG_FILE)
    target, control = apply_dags(kubeconfig, e2e_namespace, path, "trigger_target", "trigger_controller")
    run = trigger(kubeconfig, e2e_namespace, control.name)
    done = wait_for_run(kubeconfig, e2e_namespace, control.name, timeout=300)
    # Least privilege: the task pods' ServiceAccount (made by now) may not create DAGRuns.
    answer = task_account_can_i(kubeconfig, e2e_namespace, "create", "dagruns.kdag.dev")
    assert answer.stdout.strip() == "no", answer
    assert done["status"]["phase"] == "Failed", done["status"]  # `missing`
    assert done["status"]["tasks"] == {"fire": "Succeeded", "wait": "Succeeded", "missing": "Failed"}
    trs = taskruns(kubeconfig, e2e_namespace, run)

    # fire: one DAGRun, named after the TaskRun, labelled with it; its name is the task's trigger_run_id.
    fire = trs["fire"]
    triggered = {r["metadata"]["name"]: r for r in runs_of(kubeconfig, e2e_namespace, target.name)}
    fired = names.triggered_run_name(target.name, fire["metadata"]["uid"])
    assert set(triggered) == {fired, "waited-for"}
    labels = triggered[fired]["metadata"]["labels"]
    assert labels[names.TRIGGERED_BY_UID_LABEL] == fire["metadata"]["uid"]
    assert labels[names.TRIGGERED_TRY_LABEL] == "1"
    assert triggered[fired]["spec"]["conf"] == {"n": 3}
    # Owned by the DAG they run: deleting `trigger_target` deletes them (the API server checks the uid).
    target_uid = get(kubeconfig, e2e_namespace, "dag", target.name)["metadata"]["uid"]
    for made in triggered.values():
        assert [o["uid"] for o in made["metadata"]["ownerReferences"]] == [target_uid]
    assert store.decode(xcoms(kubeconfig, e2e_namespace, run, "fire")) == {
        "_link_TriggerDagRunLink": f"/dags/trigger_target/runs/{fired}",
        "trigger_run_id": fired,
    }
    # Two attempts, one try: the first asked (exit code 5), the second read the answer.
    assert (fire["status"]["attempts"], fire["status"]["reschedules"]) == (2, 1)
    trigger_status = fire["status"]["trigger"]
    assert (trigger_status["state"], trigger_status["run"], trigger_status["tryNumber"]) == (
        "Triggered",
        fired,
        1,
    )
    newest_pod = names.pod_name(run, "fire", 2, run_uid=done["metadata"]["uid"])
    newest = get(kubeconfig, e2e_namespace, "pod", newest_pod)
    # The answer is the triggered run's state when the second attempt started: by then it may have begun.
    answer = json.loads(env_of(newest)["KDAG_TRIGGERED_RUN"])
    assert answer["runId"] == fired and answer["state"] in ("queued", "running", "success"), answer

    # wait: polled `waited-for` by reschedule until it succeeded; the last pod read `success`.
    wait = trs["wait"]["status"]
    assert wait["phase"] == "Succeeded" and wait["reschedules"] >= 1
    waited = wait_for_run_named(kubeconfig, e2e_namespace, "waited-for")
    assert waited["status"]["phase"] == "Succeeded"
    assert store.decode(xcoms(kubeconfig, e2e_namespace, "waited-for", "double")) == {
        "return_value": {"double": 10, "run_type": "operator_triggered"}
    }
    last = [
        p for p in pods(kubeconfig, e2e_namespace, run) if p["metadata"]["labels"]["kdag.dev/task"] == "wait"
    ]
    newest = max(last, key=lambda p: int(p["metadata"]["labels"]["kdag.dev/attempt"]))
    assert json.loads(env_of(newest)["KDAG_TRIGGERED_RUN"]) == {"runId": "waited-for", "state": "success"}

    # missing: the task failed naming the DAG; no run was made for it.
    missing = trs["missing"]["status"]
    assert missing["message"] == (
        f"AirflowException: DAG 'no_such_dag' does not exist in namespace '{e2e_namespace}'"
        " (no DAG has that dag id)"
    )
    assert missing["trigger"]["state"] == "Failed"


def wait_for_run_named(kubeconfig: str, namespace: str, name: str, timeout: float = 120) -> dict[str, Any]:
    """The DAGRun `name` once it has finished."""

    def finished() -> dict[str, Any] | None:
        run = get(kubeconfig, namespace, "dagrun", name)
        return run if (run.get("status") or {}).get("phase") in ("Succeeded", "Failed") else None

    found: dict[str, Any] = wait_until(finished, f"DAGRun {name} to finish", timeout)
    return found
