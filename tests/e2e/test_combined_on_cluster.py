"""One DAG with the lessons that come after the seed lessons, together: a reschedule-mode sensor that
pushes its value, a mapped task over an upstream XCom list with a reduce, a branch on the reduced XCom, a
task group, and an operator defined in the DAG file. On the cluster it gives the task states and XCom rows
that `kdag run --local` gives for the same file (each feature's rows are compared with Apache Airflow's in
tests/local and bench/airflow_examples.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from controller_support import ControllerProcess
from e2e_helpers import apply, get, kdag_json, trigger, user_rows, wait_for_run
from kdag import compile as compiler
from kdag import names

pytestmark = pytest.mark.cluster


DAG_FILE = """
from datetime import datetime, timedelta, timezone

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.providers.standard.sensors.python import PythonSensor
from airflow.sdk import DAG, BaseOperator, PokeReturnValue, task, task_group


class Describe(BaseOperator):
    template_fields = ("text",)

    def __init__(self, *, text, **kwargs):
        super().__init__(**kwargs)
        self.text = text

    def execute(self, context):
        return f"total is {self.text}"


def ready(**context):
    # Not ready in the run's first seconds: the first poke reschedules (no pod held while it waits).
    if datetime.now(timezone.utc) < context["dag_run"].logical_date + timedelta(seconds=4):
        return False
    return PokeReturnValue(is_done=True, xcom_value="ready")


with DAG("combined_on_cluster", schedule=None, start_date=datetime(2026, 1, 1)):
    wait = PythonSensor(
        task_id="wait", python_callable=ready, mode="reschedule", poke_interval=2, timeout=300
    )

    @task
    def numbers():
        return [1, 2, 3]

    @task
    def double(n):
        return n * 2

    @task
    def total(values):
        return sum(values)

    @task.branch
    def choose(value, ti=None):
        return "report.describe" if value > 10 and ti.xcom_pull(task_ids="wait") == "ready" else "small"

    @task_group
    def report():
        describe = Describe(task_id="describe", text="{{ ti.xcom_pull(task_ids='total') }}")

        @task
        def shout(text):
            return text.upper()

        shout(describe.output)

    chosen = choose(total(double.expand(n=numbers())))
    wait >> chosen
    chosen >> [report(), EmptyOperator(task_id="small")]
"""


def test_sensor_mapping_branch_group_and_custom_operator_run_on_the_cluster_like_locally(
    kubeconfig: str, controller: ControllerProcess, e2e_namespace: str, tmp_path: Path
) -> None:
    path = tmp_path / "combined_on_cluster.py"
    path.write_text(DAG_FILE)
    loaded = compiler.load(path)
    for manifest in loaded.manifests:
        apply(kubeconfig, e2e_namespace, manifest)
    trigger(kubeconfig, e2e_namespace, loaded.name)
    run = wait_for_run(kubeconfig, e2e_namespace, loaded.name, timeout=600)
    name = run["metadata"]["name"]
    assert run["status"]["phase"] == "Succeeded", run["status"]
    assert run["status"]["mapped"] == {"double": {"length": 3, "phases": {"Succeeded": 3}}}

    # The sensor waited by reschedule: more than one attempt in one try, its last pod the one kept.
    wait = get(kubeconfig, e2e_namespace, "taskrun", names.taskrun_name(name, "wait"))
    assert wait["status"]["phase"] == "Succeeded"
    assert wait["status"]["reschedules"] >= 1, wait["status"]
    choose = get(kubeconfig, e2e_namespace, "taskrun", names.taskrun_name(name, "choose"))
    assert choose["status"]["skipTasks"] == ["small"]

    cluster = kdag_json("xcom", name, "-n", e2e_namespace, "--kubeconfig", kubeconfig)
    local = kdag_json("run", "--local", str(path), "--workdir", str(tmp_path / "local"))
    assert local["state"] == "success", local
    assert cluster["tasks"] == local["tasks"]
    assert cluster["tasks"] == {
        "wait": "success",
        "numbers": "success",
        "double[0]": "success",
        "double[1]": "success",
        "double[2]": "success",
        "total": "success",
        "choose": "success",
        "report.describe": "success",
        "report.shout": "success",
        "small": "skipped",
    }
    assert user_rows(cluster) == user_rows(local)
    values = {(r["task_id"], r["key"], r.get("map_index", -1)): r["value"] for r in cluster["xcoms"]}
    assert values[("wait", "return_value", -1)] == "ready"
    assert values[("total", "return_value", -1)] == 12
    assert values[("report.shout", "return_value", -1)] == "TOTAL IS 12"
