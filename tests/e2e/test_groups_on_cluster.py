"""A Python DAG with nested task groups runs on the cluster: `outer.inner.task` ids name its TaskRuns, pods
and XCom ConfigMaps (names.task_slug: dots become dashes plus a hash) and label them (`kdag.dev/task` holds
the dotted id, up to 63 characters), and its XCom rows and task states are those of `kdag run --local`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from controller_support import ControllerProcess, kubectl
from e2e_helpers import apply, get, trigger, wait_for_run
from kdag import compile as compiler
from kdag import names
from kdag_runner import store

pytestmark = pytest.mark.cluster

KDAG = str(Path(sys.executable).parent / "kdag")
# 63 characters: the longest id a TaskSpec and the `kdag.dev/task` label take (group prefixes included).
LONGEST = "outer.inner." + "t" * 51

DAG_FILE = f'''
from datetime import datetime

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG, TaskGroup, task, task_group


@task
def produce() -> dict[str, int]:
    return {{"a": 1, "b": 2}}


@task
def add(a, b):
    return a + b


@task
def describe(value, **context):
    return f"{{context['task'].task_id}} got {{value}}"


@task_group
def stage(value):
    return describe(value)


with DAG("groups_on_cluster", schedule=None, start_date=datetime(2026, 1, 1)) as dag:
    start = EmptyOperator(task_id="start")
    with TaskGroup("outer") as outer:
        parts = produce()
        with TaskGroup("inner") as inner:
            total = add(parts["a"], parts["b"])
            longest = describe.override(task_id="{LONGEST[len("outer.inner."):]}")(total)
    with TaskGroup("after", prefix_group_id=False) as after:
        flat = describe.override(task_id="flat")(total)
    start >> outer >> after
    stage(flat) >> stage(longest)
'''

TASK_IDS = {
    "start",
    "outer.produce",
    "outer.inner.add",
    LONGEST,
    "flat",
    "stage.describe",
    "stage__1.describe",
}


def local_run(path: Path) -> dict[str, Any]:
    command = [KDAG, "run", "--local", str(path), "-o", "json"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def cluster_rows(kubeconfig: str, namespace: str, run: str) -> list[tuple[str, str, str]]:
    """(task id, key, JSON value) of every user XCom of the run, from its ConfigMaps' labels and data."""
    items = get(kubeconfig, namespace, "configmaps", "-l", f"kdag.dev/dagrun={run}")["items"]
    rows = []
    for item in items:
        task_id = item["metadata"]["labels"]["kdag.dev/task"]
        assert item["metadata"]["name"] == names.xcom_configmap_name(run, task_id)
        for key, value in store.decode(item.get("data") or {}).items():
            if not key.startswith("__"):
                rows.append((task_id, key, json.dumps(value, sort_keys=True)))
    return sorted(rows)


def test_nested_groups_run_on_the_cluster_like_locally(
    kubeconfig: str, controller: ControllerProcess, e2e_namespace: str, tmp_path: Path
) -> None:
    path = tmp_path / "groups_on_cluster.py"
    path.write_text(DAG_FILE)
    loaded = compiler.load(path)
    assert {t.id for t in loaded.spec.tasks} == TASK_IDS
    for manifest in loaded.manifests:
        apply(kubeconfig, e2e_namespace, manifest)
    trigger(kubeconfig, e2e_namespace, loaded.name)  # schedule=None: runs when triggered
    run = wait_for_run(kubeconfig, e2e_namespace, loaded.name, timeout=600)
    name = run["metadata"]["name"]
    assert run["status"]["phase"] == "Succeeded", run["status"]
    assert run["status"]["tasks"] == dict.fromkeys(TASK_IDS, "Succeeded")

    # TaskRuns and pods: names from the slug, the dotted id in spec and in the label.
    taskruns = get(kubeconfig, e2e_namespace, "taskruns", "-l", f"kdag.dev/dagrun={name}")["items"]
    assert {tr["spec"]["taskId"] for tr in taskruns} == TASK_IDS
    for tr in taskruns:
        task_id = tr["spec"]["taskId"]
        assert tr["metadata"]["name"] == names.taskrun_name(name, task_id)
        assert tr["metadata"]["labels"]["kdag.dev/task"] == task_id
        assert tr["status"]["podName"] == names.pod_name(name, task_id, 1, run_uid=run["metadata"]["uid"])
    selected = get(kubeconfig, e2e_namespace, "taskruns,pods", "-l", f"kdag.dev/task={LONGEST}")["items"]
    assert sorted(item["kind"] for item in selected) == ["Pod", "TaskRun"]
    listed = kubectl(kubeconfig, "get", "taskruns", "-n", e2e_namespace, "-l", f"kdag.dev/dagrun={name}")
    assert "outer.inner.add" in listed

    # The rows are the local run's.
    local = local_run(path)
    assert local["state"] == "success"
    assert set(local["tasks"]) == TASK_IDS
    local_rows = sorted(
        (row["task_id"], row["key"], json.dumps(row["value"], sort_keys=True))
        for row in local["xcoms"]
        if not row["key"].startswith("__")
    )
    assert cluster_rows(kubeconfig, e2e_namespace, name) == local_rows
    assert ("outer.inner.add", "return_value", "3") in local_rows
    assert (LONGEST, "return_value", json.dumps(f"{LONGEST} got 3")) in local_rows
