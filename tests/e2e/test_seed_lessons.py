"""Both seed lessons as DAG manifests, run to Succeeded on the cluster, with Airflow's XCom rows."""

from __future__ import annotations

import json

import pytest
from controller_support import ControllerProcess
from e2e_helpers import apply, get, load_example, logical_ds, runs_of, task_log, taskruns, wait_for_run, xcoms

pytestmark = pytest.mark.cluster


def test_working_with_xcoms_lesson(
    kubeconfig: str, controller: ControllerProcess, e2e_namespace: str
) -> None:
    apply(kubeconfig, e2e_namespace, load_example("xcom-lesson.yaml"))
    run = wait_for_run(kubeconfig, e2e_namespace, "etl-dag")
    name = run["metadata"]["name"]
    assert run["status"]["phase"] == "Succeeded", run["status"]
    assert run["status"]["progress"] == "3/3"
    ds = logical_ds(run)

    hello = xcoms(kubeconfig, e2e_namespace, name, "hello_task")
    assert hello["return_value"] == "hello world"
    assert hello["execution_time"] == ds
    goodbye = xcoms(kubeconfig, e2e_namespace, name, "goodbye_task")
    assert json.loads(goodbye["return_value"]) == [ds]
    assert json.loads(goodbye[".types"])["return_value"] == "json"
    sql = xcoms(kubeconfig, e2e_namespace, name, "sql_task")
    assert sql["return_value"] == "hello world"

    tasks = taskruns(kubeconfig, e2e_namespace, name)
    assert sorted(tasks["hello_task"]["status"]["xcomKeys"]) == ["execution_time", "return_value"]
    assert {t: tr["status"]["phase"] for t, tr in tasks.items()} == dict.fromkeys(tasks, "Succeeded")
    conditions = {c["type"]: c for c in run["status"]["conditions"]}
    assert conditions["Ready"]["status"] == "True"
    assert conditions["Ready"]["observedGeneration"] == run["metadata"]["generation"]


def test_three_ways_lesson(kubeconfig: str, controller: ControllerProcess, e2e_namespace: str) -> None:
    apply(kubeconfig, e2e_namespace, load_example("xcom-three-ways.yaml"))
    run = wait_for_run(kubeconfig, e2e_namespace, "xcom-three-ways")
    name = run["metadata"]["name"]
    assert run["status"]["phase"] == "Succeeded", run["status"]

    push = xcoms(kubeconfig, e2e_namespace, name, "push_task")
    assert push["key"] == "some value"
    assert "return_value" not in push  # push_task returns None: nothing is pushed
    context = xcoms(kubeconfig, e2e_namespace, name, "set_context_task")
    assert json.loads(context["__context"]) == {"value": "some value"}

    tasks = taskruns(kubeconfig, e2e_namespace, name)
    for task_id in ("pull_task", "get_context_task", "use_value_task"):
        log = task_log(kubeconfig, e2e_namespace, tasks[task_id]["status"]["podName"])
        assert "Value: some value" in log, f"{task_id} printed: {log!r}"


def test_reapplying_an_unchanged_dag_starts_nothing(
    kubeconfig: str, controller: ControllerProcess, e2e_namespace: str
) -> None:
    manifest = load_example("xcom-lesson.yaml")
    apply(kubeconfig, e2e_namespace, manifest)
    first = wait_for_run(kubeconfig, e2e_namespace, "etl-dag")
    apply(kubeconfig, e2e_namespace, manifest)
    dag = get(kubeconfig, e2e_namespace, "dag", "etl-dag")
    runs = runs_of(kubeconfig, e2e_namespace, "etl-dag")
    assert [r["metadata"]["name"] for r in runs] == [first["metadata"]["name"]]
    assert dag["status"]["lastRun"] == first["metadata"]["name"]
    assert {c["type"]: c["status"] for c in dag["status"]["conditions"]}["Ready"] == "True"


