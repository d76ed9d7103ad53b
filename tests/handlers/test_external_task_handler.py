"""The DAGRun handler runs ExternalTaskSensors against an in-memory API server whose "kubelet" runs each pod's
runner for real (`fake_api`): a sensor's first attempt asks (up for reschedule at once, `externalRuns` in its
report, recorded in `status.externalRuns`); every later attempt starts with `KDAG_EXTERNAL_RUNS`, the
controller's reading, when it starts, of the other DAG's runs at that logical date and their tasks' states;
the sensor succeeds once the parent's task (its task group, its whole run) succeeded, fails at once with
`check_existence` on a DAG that does not exist, and skips at its timeout with `soft_fail` when no run exists
at the dates it asked for. The pods never read a DAGRun. tests/e2e/test_external_task_on_cluster.py is the
real one."""

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

NS = "team"

DAG_FILE = """
from datetime import datetime, timedelta

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.providers.standard.sensors.external_task import ExternalTaskMarker, ExternalTaskSensor
from airflow.sdk import DAG, TaskGroup, task

with DAG("parent", schedule=None, start_date=datetime(2026, 1, 1)):

    @task
    def slow():
        import time

        time.sleep(2)

    marker = ExternalTaskMarker(task_id="marker", external_dag_id="child", external_task_id="wait")
    with TaskGroup("grp"):
        EmptyOperator(task_id="a") >> EmptyOperator(task_id="b")
    slow() >> marker

with DAG("child", schedule=None, start_date=datetime(2026, 1, 1)):
    ExternalTaskSensor(
        task_id="wait", external_dag_id="parent", external_task_id="marker", poke_interval=1, mode="poke"
    )
    ExternalTaskSensor(
        task_id="group", external_dag_id="parent", external_task_group_id="grp", poke_interval=1
    )
    ExternalTaskSensor(task_id="whole", external_dag_id="parent", poke_interval=1)
    ExternalTaskSensor(task_id="missing", external_dag_id="nowhere", check_existence=True, poke_interval=1)
    ExternalTaskSensor(
        task_id="never",
        external_dag_id="parent",
        external_task_id="marker",
        execution_delta=timedelta(days=1),
        poke_interval=1,
        timeout=3,
        soft_fail=True,
    )
"""


def test_sensors_learn_the_other_runs_from_the_controller(tmp_path: Path) -> None:
    dag_file = tmp_path / "dags.py"
    dag_file.write_text(DAG_FILE)
    cluster = FakeApi()
    runtime = runtime_over(cluster)

    async def main() -> None:
        await create_dags(cluster, NS, dag_file, "parent", "child")
        # Both at the same logical date (fake_api's): the child's sensors wait for this parent run.
        await cluster.create(dagrun_manifest("kid", "child"), NS)
        await cluster.create(dagrun_manifest("dad", "parent"), NS)
        await drive_runs(cluster, runtime, tmp_path / "pods", dag_file, ["kid", "dad"])
        await stop_background(runtime)

    asyncio.run(main())
    assert cluster.objects[("DAGRun", "dad")]["status"]["phase"] == "Succeeded"
    kid = cluster.objects[("DAGRun", "kid")]["status"]
    assert kid["tasks"] == {
        "wait": "Succeeded",
        "group": "Succeeded",
        "whole": "Succeeded",
        "missing": "Failed",
        "never": "Skipped",
    }
    assert kid["phase"] == "Failed"  # missing

    # wait: the first attempt asked, the controller recorded the question and answered every later one.
    wait = cluster.taskrun("kid", "wait")["status"]
    assert wait["reschedules"] >= 1 and wait["attempts"] == wait["reschedules"] + 1
    assert wait["externalRuns"] == {
        "dagId": "parent",
        "taskIds": ["marker"],
        "logicalDates": ["2026-11-21T00:00:00Z"],
    }
    pods = cluster.pods_of("wait", deleted=True)
    assert "KDAG_EXTERNAL_RUNS" not in env_of(pods[0])
    last = json.loads(env_of(pods[-1])["KDAG_EXTERNAL_RUNS"])
    assert last == {
        "asked": {"dagId": "parent", "taskIds": ["marker"], "logicalDates": ["2026-11-21T00:00:00Z"]},
        "dagExists": True,
        "missingTasks": [],
        "runs": [
            {
                "runId": "dad",
                "logicalDate": "2026-11-21T00:00:00Z",
                "state": last["runs"][0]["state"],
                "tasks": {"marker": {"success": 1}},
            }
        ],
    }
    assert xcoms(cluster, "kid", "wait") == {"_link_ExternalDagLink": "/dags/parent/runs/kid"}
    assert xcoms(cluster, "dad", "marker") == {"_link_ExternalDagLink": "/dags/child/runs/dad"}
    group = json.loads(env_of(cluster.pods_of("group", deleted=True)[-1])["KDAG_EXTERNAL_RUNS"])
    assert group["groupExists"] is True
    assert group["runs"][0]["tasks"] == {"grp.a": {"success": 1}, "grp.b": {"success": 1}}

    missing = cluster.taskrun("kid", "missing")["status"]
    assert missing["message"] == "ExternalDagNotFoundError: The external DAG nowhere does not exist."
    never = cluster.taskrun("kid", "never")["status"]
    assert never["message"].startswith("Sensor has timed out")
    answers = [
        json.loads(env_of(p)["KDAG_EXTERNAL_RUNS"]) for p in cluster.pods_of("never", deleted=True)[1:]
    ]
    assert answers and all(a["runs"] == [] for a in answers)  # no parent run a day earlier
