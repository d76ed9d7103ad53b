"""The DAGRun handler runs TriggerDagRunOperators against an in-memory API server whose "kubelet" runs each
pod's runner for real (`fake_api`): the first attempt asks (up for reschedule), the controller makes the
DAGRun (labelled with the TaskRun and try that asked, its params checked first) or says why not, and the
next attempt reads the answer in `KDAG_TRIGGERED_RUN`; a waiting task pokes the run's phase by reschedule,
a run of that name made by another task is Airflow's DagRunAlreadyExists, and `reset_dag_run` deletes the
run (foreground) and makes it again with its own conf. The task pods never create a DAGRun.
tests/e2e/test_trigger_dagrun_on_cluster.py is the real one."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from fake_api import (
    FakeApi,
    create_dags,
    dagrun_manifest,
    drive_runs,
    env_of,
    runtime_over,
    stop_background,
    xcoms,
)
from kdag import names

NS = "team"

DAG_FILE = """
from datetime import datetime

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import DAG, Param, task

with DAG("target", schedule=None, start_date=datetime(2026, 1, 1), params={"n": Param(1, type="integer")}):

    @task
    def double(params=None, dag_run=None):
        return {"double": params["n"] * 2, "run_type": dag_run.run_type}

    double()

with DAG("controller", schedule=None, start_date=datetime(2026, 1, 1)):
    fire = TriggerDagRunOperator(task_id="fire", trigger_dag_id="target", conf={"n": 3})
    wait = TriggerDagRunOperator(
        task_id="wait",
        trigger_dag_id="target",
        trigger_run_id="fixed-run",
        conf={"n": 5},
        wait_for_completion=True,
        poke_interval=1,
    )
    again = TriggerDagRunOperator(
        task_id="again", trigger_dag_id="target", trigger_run_id="fixed-run", skip_when_already_exists=True
    )
    TriggerDagRunOperator(task_id="missing", trigger_dag_id="nowhere")
    TriggerDagRunOperator(task_id="refused", trigger_dag_id="target", conf={"n": "three"})
    wait >> again

with DAG("resetter", schedule=None, start_date=datetime(2026, 1, 1)):
    TriggerDagRunOperator(
        task_id="redo",
        trigger_dag_id="target",
        trigger_run_id="fixed-run",
        conf={"n": 7},
        reset_dag_run=True,
        wait_for_completion=True,
        poke_interval=1,
    )
"""


def test_the_controller_makes_the_runs_tasks_ask_for(tmp_path: Path) -> None:
    dag_file = tmp_path / "dags.py"
    dag_file.write_text(DAG_FILE)
    cluster = FakeApi()
    runtime = runtime_over(cluster)

    async def main() -> None:
        await create_dags(cluster, NS, dag_file, "target", "controller", "resetter")
        await cluster.create(dagrun_manifest("ctl", "controller"), NS)
        await drive_runs(cluster, runtime, tmp_path / "pods", dag_file, ["ctl", "fixed-run"])
        await cluster.create(dagrun_manifest("again", "resetter"), NS)
        await drive_runs(cluster, runtime, tmp_path / "pods", dag_file, ["again", "fixed-run"])
        await stop_background(runtime)

    asyncio.run(main())
    ctl = cluster.objects[("DAGRun", "ctl")]["status"]
    assert ctl["phase"] == "Failed"  # missing and refused
    assert ctl["tasks"] == {
        "fire": "Succeeded",
        "wait": "Succeeded",
        "again": "Skipped",
        "missing": "Failed",
        "refused": "Failed",
    }

    # fire: one run per TaskRun, named after it; the task pushed its name as Airflow pushes a run id.
    fire = cluster.taskrun("ctl", "fire")
    made = [
        obj
        for (kind, _), obj in cluster.objects.items()
        if kind == "DAGRun"
        and obj["metadata"]["labels"].get(names.TRIGGERED_BY_UID_LABEL) == fire["metadata"]["uid"]
    ]
    assert len(made) == 1
    run = made[0]["metadata"]["name"]
    assert run == names.triggered_run_name("target", fire["metadata"]["uid"])
    assert made[0]["spec"] == {"dagRef": {"name": "target"}, "conf": {"n": 3}}
    assert made[0]["metadata"]["labels"][names.TRIGGERED_TRY_LABEL] == "1"
    assert xcoms(cluster, "ctl", "fire") == {
        "_link_TriggerDagRunLink": f"/dags/target/runs/{run}",
        "trigger_run_id": run,
    }
    status = fire["status"]
    assert (status["attempts"], status["reschedules"]) == (2, 1)
    assert status["trigger"]["state"] == "Triggered" and status["trigger"]["run"] == run
    pods = cluster.pods_of("fire", deleted=True)
    assert "KDAG_TRIGGERED_RUN" not in env_of(pods[0])
    # The triggered run's state when the second attempt started: it may have begun by then.
    answer = json.loads(env_of(pods[-1])["KDAG_TRIGGERED_RUN"])
    assert answer["runId"] == run and answer["state"] in ("queued", "running", "success"), answer
    assert any(e["reason"] == "Triggered" for e in cluster.events)

    # wait: polled the run it made until it succeeded (params from the conf, run type as Airflow's).
    wait = cluster.taskrun("ctl", "wait")["status"]
    # The first attempt asks; how many pokes follow depends on how soon the target run ends (it may have
    # ended before the second attempt started): every poke but the last saw it unfinished.
    assert wait["phase"] == "Succeeded" and wait["reschedules"] >= 1
    answers = [env_of(p).get("KDAG_TRIGGERED_RUN") for p in cluster.pods_of("wait", deleted=True)]
    assert answers[0] is None and answers[-1] == '{"runId":"fixed-run","state":"success"}'
    assert len(answers) == wait["attempts"] == wait["reschedules"] + 1
    assert all(json.loads(a)["state"] in ("queued", "running") for a in answers[1:-1]), answers
    assert xcoms(cluster, "ctl", "wait")["trigger_run_id"] == "fixed-run"

    # again: a run of that name made by another task exists: skipped, as skip_when_already_exists says.
    again = cluster.taskrun("ctl", "again")["status"]
    assert again["trigger"]["state"] == "Exists"
    assert again["message"] == (
        "Dag Run already exists, skipping task as skip_when_already_exists is set to True."
    )

    # missing, refused: the task fails with the reason, naming the DAG; no run was made.
    missing = cluster.taskrun("ctl", "missing")["status"]
    assert (
        missing["message"]
        == "AirflowException: DAG 'nowhere' does not exist in namespace 'team' (no DAG has that dag id)"
    )
    refused = cluster.taskrun("ctl", "refused")["status"]
    assert refused["message"].startswith("AirflowException: DAG 'target': param 'n': 'three' is not of type")

    # redo: reset_dag_run deleted fixed-run in the foreground and made it again, with the run's own conf.
    assert cluster.objects[("DAGRun", "again")]["status"]["tasks"] == {"redo": "Succeeded"}
    remade = cluster.objects[("DAGRun", "fixed-run")]
    redo = cluster.taskrun("again", "redo")
    assert remade["metadata"]["labels"][names.TRIGGERED_BY_UID_LABEL] == redo["metadata"]["uid"]
    assert remade["spec"]["conf"] == {"n": 5}
    assert ("DAGRun", "fixed-run") in cluster.deleted
    assert xcoms(cluster, "fixed-run", "double") == {
        "return_value": {"double": 10, "run_type": "operator_triggered"}
    }
    assert any(e["reason"] == "ResettingRun" for e in cluster.events)
