"""The DAGRun handler runs a mapped task against an in-memory API server whose "kubelet" runs each pod's
runner for real (`fake_api`): it lays out the pod's XCom volumes as the kubelet would (a ConfigMap volume,
and for a mapped ancestor the projected volume's `{i}/{key}` items), resolves its env, runs `python -m
kdag_runner run` and stores what the runner pushed in the ConfigMap the pod names, checking the XCom write
guard's rule. So the controller's side of mapping (expansion, instance TaskRuns and pods, the delivery
contract, retries of one instance, what a failed instance pushed, the run's status) is checked without a
cluster; tests/e2e/test_mapping_on_cluster.py is the real one."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from fake_api import LOCAL_DAGS, FakeApi, dagrun_manifest, run_pod, runtime_over
from kdag import compile as compiler
from kdag import names
from kdag.handlers import dagruns
from kdag.handlers.runtime import Runtime
from kdag_runner import store

NS = "team"


DAG_FILE = """
import os
from datetime import datetime

from airflow.sdk import DAG, task

with DAG("mapped", schedule=None, start_date=datetime(2026, 1, 1)) as dag:

    @task
    def numbers():
        return [1, 2, 3, 4]

    @task(retries=1, retry_delay=0)
    def square(n, ti=None):
        if os.environ.get("FAIL_THIS_ATTEMPT"):
            raise ValueError("this attempt fails")
        ti.xcom_push(key="seen", value=n)
        return n * n

    @task
    def total(values, ti=None):
        return {"all": list(values), "one": ti.xcom_pull(task_ids="square", map_indexes=2)}

    @task
    def empty():
        return []

    @task
    def never(x):
        return x

    total(square.expand(n=numbers()))
    never.expand(x=empty())
"""


async def drive(
    cluster: FakeApi,
    runtime: Runtime,
    work: Path,
    dag_file: Path,
    fail_once: set[str],
    run: str = "mapped-run",
) -> None:
    key = (NS, run)
    for _ in range(40):
        await dagruns._reconcile(runtime, key)
        dagrun = cluster.objects[("DAGRun", run)]
        if (dagrun.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            return
        for pod in cluster.unstarted_pods():
            run_pod(cluster, pod, work, dag_file, fail_once)
    raise AssertionError("the run did not finish")


def test_the_handler_expands_delivers_retries_one_instance_and_summarises(tmp_path: Path) -> None:
    dag_file = tmp_path / "mapped.py"
    dag_file.write_text(DAG_FILE)
    loaded = compiler.load(dag_file)
    cluster = FakeApi()
    runtime = runtime_over(cluster)
    fail_once: set[str] = set()

    async def main() -> None:
        await cluster.create(compiler.dag_manifest(loaded.name, loaded.spec), NS)
        await cluster.create(dagrun_manifest("mapped-run", loaded.name), NS)
        fail_once.add(cluster.pod_name("mapped-run", "square", 1, 1))
        await drive(cluster, runtime, tmp_path / "pods", dag_file, fail_once)
        await asyncio.gather(*runtime.background, return_exceptions=True)

    asyncio.run(main())
    run = cluster.objects[("DAGRun", "mapped-run")]["status"]
    assert run["phase"] == "Succeeded", run
    assert run["tasks"] == {
        "numbers": "Succeeded",
        "square": "Succeeded",
        "total": "Succeeded",
        "empty": "Succeeded",
        "never": "Skipped",
    }
    assert run["mapped"] == {"square": {"length": 4, "phases": {"Succeeded": 4}}}
    assert run["progress"] == "8/8"  # numbers, 4 instances, total, empty, never

    taskruns = cluster.taskruns()
    for index in range(4):
        instance = taskruns[names.taskrun_name("mapped-run", "square", index)]
        assert instance["spec"]["mapIndex"] == index
        assert instance["metadata"]["labels"][names.MAP_INDEX_LABEL] == str(index)
        assert instance["status"]["phase"] == "Succeeded"
        assert instance["status"]["attempts"] == (2 if index == 1 else 1)  # instance 1 alone was retried
    never = taskruns[names.taskrun_name("mapped-run", "never")]
    assert never["status"] == {**never["status"], "phase": "Skipped", "message": "mapped over 0 elements"}
    assert taskruns[names.taskrun_name("mapped-run", "numbers")]["status"]["xcomLengths"] == {
        "return_value": 4
    }

    total = cluster.objects[("ConfigMap", names.xcom_configmap_name("mapped-run", "total"))]["data"]
    assert json.loads(total["return_value"]) == {"all": [1, 4, 9, 16], "one": 9}
    seen = cluster.objects[("ConfigMap", names.xcom_configmap_name("mapped-run", "square", 3))]["data"]
    assert store.decode(seen) == {"seen": 4, "return_value": 16}
    total_pod = cluster.objects[("Pod", cluster.pod_name("mapped-run", "total", 1))]
    env = {v["name"]: v.get("value") for v in total_pod["spec"]["containers"][0]["env"]}
    assert json.loads(env["KDAG_MAPPED"]) == {"square": 4}


FAILING_DAG_FILE = LOCAL_DAGS / "mapping_failed_instance.py"


def test_what_a_failed_instance_pushed_reaches_the_tasks_downstream(tmp_path: Path) -> None:
    """As in Airflow (its XComs are kept after a failed try) and in `kdag run --local`: the instance's
    TaskRun lists the keys it stored, so the projected volume of the task downstream holds them."""
    loaded = compiler.load(FAILING_DAG_FILE)
    cluster = FakeApi()
    runtime = runtime_over(cluster)

    async def main() -> None:
        await cluster.create(compiler.dag_manifest(loaded.name, loaded.spec), NS)
        await cluster.create(dagrun_manifest("failing-run", loaded.name), NS)
        await drive(cluster, runtime, tmp_path / "pods", FAILING_DAG_FILE, set(), run="failing-run")
        await asyncio.gather(*runtime.background, return_exceptions=True)

    asyncio.run(main())
    run = cluster.objects[("DAGRun", "failing-run")]["status"]
    assert run["phase"] == "Succeeded", run  # its leaf succeeded, as Airflow decides a run
    assert run["tasks"] == {"fragile": "Failed", "cleanup": "Succeeded"}
    failed = cluster.taskrun("failing-run", "fragile", 1)["status"]
    assert (failed["phase"], failed["xcomKeys"]) == ("Failed", ["seen"])
    cleanup = cluster.objects[("ConfigMap", names.xcom_configmap_name("failing-run", "cleanup"))]["data"]
    # Airflow 3.3.2's answer: return values of the instances that succeeded, `seen` of all three.
    assert json.loads(cleanup["return_value"]) == {"values": [1, 3], "seen": [1, 2, 3], "seen_by_failed": 2}
    cleanup_pod = cluster.objects[("Pod", cluster.pod_name("failing-run", "cleanup", 1))]
    volume = next(v for v in cleanup_pod["spec"]["volumes"] if "projected" in v)
    items = volume["projected"]["sources"][1]["configMap"]["items"]
    assert {"key": "seen", "path": "fragile/1/seen"} in items
