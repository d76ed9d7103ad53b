"""Branches, short-circuits and an operator defined in the DAG file, compiled with `kdag compile` and run on
the cluster: the TaskRun phases, each branch's `status.skipTasks` and the XCom ConfigMaps equal what `kdag
run --local` gives for the same files (whose rows equal Apache Airflow 3.3.2's: tests/local)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from controller_support import REPO, ControllerProcess, kubectl
from e2e_helpers import taskruns, trigger, wait_for_run, xcoms
from kdag.compile import dag_name
from kdag_runner import store

pytestmark = pytest.mark.cluster

KDAG = str(Path(sys.executable).parent / "kdag")
AIRFLOW_DAGS = REPO / "tests" / "local" / "airflow_dags"
LOCAL_STATES = {
    "Succeeded": "success",
    "Failed": "failed",
    "Skipped": "skipped",
    "UpstreamFailed": "upstream_failed",
}

CUSTOM = """\
from datetime import timedelta

from airflow.sdk import DAG, BaseOperator, task
from airflow.providers.standard.operators.empty import EmptyOperator


def noted(context):
    context["ti"].xcom_push(key="noted", value=context["ti"].try_number)


class Shout(BaseOperator):
    template_fields = ("text",)

    def __init__(self, *, text, **kwargs):
        super().__init__(**kwargs)
        self.text = text

    def execute(self, context):
        if context["ti"].try_number == 1:
            raise ValueError("first try fails")
        return self.text.upper()


with DAG("custom-on-cluster", params={"who": "kdag"}, default_args={"on_success_callback": noted}):

    @task
    def produce():
        return "{{ not_rendered }}"

    shout = Shout(
        task_id="shout",
        text="hello {{ params.who }}",
        retries=1,
        retry_delay=timedelta(seconds=1),
        on_retry_callback=noted,
    )

    @task.branch
    def choose(value):
        return "kept" if value == "HELLO KDAG" else "dropped"

    produce() >> shout
    choose(shout.output) >> [EmptyOperator(task_id="kept"), EmptyOperator(task_id="dropped")]
"""


def kdag(*args: str) -> str:
    done = subprocess.run([KDAG, *args], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode in (0, 1), done.stderr
    return done.stdout


def local_run(path: Path, workdir: Path) -> dict[str, Any]:
    output = kdag("run", "--local", str(path), "-o", "json", "--workdir", str(workdir))
    result: dict[str, Any] = json.loads(output)
    return result


def cluster_rows(kubeconfig: str, namespace: str, run: str, task_ids: list[str]) -> list[str]:
    rows = []
    for task_id in task_ids:
        data = xcoms(kubeconfig, namespace, run, task_id)
        for key, value in store.decode(data).items():
            if not key.startswith("__"):
                rows.append(json.dumps({"task_id": task_id, "key": key, "value": value}, sort_keys=True))
    return sorted(rows)


def local_rows(result: dict[str, Any]) -> list[str]:
    return sorted(json.dumps(r, sort_keys=True) for r in result["xcoms"] if not r["key"].startswith("__"))


@pytest.mark.parametrize("file_name", ["branching.py", "short_circuit.py", "custom.py"])
def test_a_compiled_dag_runs_on_the_cluster_as_it_runs_locally(
    kubeconfig: str, controller: ControllerProcess, e2e_namespace: str, tmp_path: Path, file_name: str
) -> None:
    path = AIRFLOW_DAGS / file_name
    if file_name == "custom.py":
        path = tmp_path / file_name
        path.write_text(textwrap.dedent(CUSTOM))
    local = local_run(path, tmp_path / "local")
    manifests = kdag("compile", str(path))
    kubectl(kubeconfig, "apply", "-n", e2e_namespace, "-f", "-", stdin=manifests)
    trigger(kubeconfig, e2e_namespace, dag_name(local["dag_id"]))  # schedule=None: runs when triggered
    run = wait_for_run(kubeconfig, e2e_namespace, dag_name(local["dag_id"]), timeout=420)
    name = run["metadata"]["name"]

    tasks = taskruns(kubeconfig, e2e_namespace, name)
    states = {tid: LOCAL_STATES[tr["status"]["phase"]] for tid, tr in tasks.items()}
    assert states == local["tasks"]
    assert run["status"]["phase"] == ("Succeeded" if local["state"] == "success" else "Failed")
    ran = [tid for tid, tr in tasks.items() if tr["status"].get("podName")]
    assert cluster_rows(kubeconfig, e2e_namespace, name, ran) == local_rows(local)

    # Each branch's report reached its TaskRun as the local run read it from the termination file.
    for task_id in ran:
        termination = tmp_path / "local" / "logs" / f"{task_id}.termination"
        reported = json.loads(termination.read_text()).get("skipTasks") if termination.exists() else None
        assert tasks[task_id]["status"].get("skipTasks") == reported, task_id
    if file_name == "branching.py":
        assert tasks["pick"]["status"]["skipTasks"] == ["right"]
        assert tasks["right"]["status"]["phase"] == "Skipped"
    if file_name == "custom.py":
        assert tasks["shout"]["status"]["attempts"] == 2
        assert states["dropped"] == "skipped"
