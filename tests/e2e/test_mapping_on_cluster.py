"""A dynamically mapped task runs on the cluster as it runs locally: a 10-way mapped task over an upstream
XCom list and a reduce over its values. Each instance is a TaskRun `{run}-{slug}.{i}` (spec.mapIndex, the
`kdag.dev/map-index` label, the `Index` printer column) with its pod and its own XCom ConfigMap (the write
guard lets it write only that one); the reduce pod gets every instance's XComs through one projected
volume; the run's status summarises the mapped task; `kdag xcom -o json` gives the rows (with `map_index`)
and the task states (`each[i]`) of `kdag run --local -o json` (docs/design.md, "Mapped tasks"). A mapped
task group runs the same way, index by index: each of its tasks is mapped with the group's length, a failed
instance makes only the same instance of the next task of the group UpstreamFailed (a TaskRun with no pod),
and the task after the group reads every instance's value."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from controller_support import ControllerProcess, kubectl
from e2e_helpers import KDAG, LOCAL_DAGS, apply, get, kdag_json, trigger, user_rows, wait_for_run
from kdag import compile as compiler
from kdag import names

pytestmark = pytest.mark.cluster

WIDTH = 10

DAG_FILE = f"""
from datetime import datetime

from airflow.sdk import DAG, task


with DAG("mapping_on_cluster", schedule=None, start_date=datetime(2026, 1, 1)) as dag:

    @task
    def numbers():
        return list(range({WIDTH}))

    @task(map_index_template="n{{{{ task.op_kwargs['n'] }}}}")
    def square(n, ti=None):
        ti.xcom_push(key="seen", value=f"saw {{n}}")
        return n * n

    @task
    def total(values, ti=None):
        return {{
            "sum": sum(values),
            "all": list(values),
            "some": ti.xcom_pull(task_ids="square", map_indexes=[0, {WIDTH - 1}]),
            "seen": ti.xcom_pull(task_ids="square", key="seen"),
        }}

    total(square.expand(n=numbers()))
"""


def test_a_mapped_task_and_its_reduce_run_on_the_cluster_like_locally(
    kubeconfig: str, controller: ControllerProcess, e2e_namespace: str, tmp_path: Path
) -> None:
    path = tmp_path / "mapping_on_cluster.py"
    path.write_text(DAG_FILE)
    loaded = compiler.load(path)
    square = loaded.spec.task("square")
    assert square.map is not None and square.map.length.xcom is not None
    assert square.map.length.xcom.task == "numbers"
    for manifest in loaded.manifests:
        apply(kubeconfig, e2e_namespace, manifest)
    trigger(kubeconfig, e2e_namespace, loaded.name)
    run = wait_for_run(kubeconfig, e2e_namespace, loaded.name, timeout=900)
    name = run["metadata"]["name"]
    uid = run["metadata"]["uid"]
    status = run["status"]
    assert status["phase"] == "Succeeded", status
    assert status["tasks"] == {"numbers": "Succeeded", "square": "Succeeded", "total": "Succeeded"}
    assert status["mapped"] == {"square": {"length": WIDTH, "phases": {"Succeeded": WIDTH}}}
    assert status["progress"] == f"{WIDTH + 2}/{WIDTH + 2}"

    # One TaskRun, pod and ConfigMap per instance, named and labelled with its index.
    taskruns = get(
        kubeconfig, e2e_namespace, "taskruns", "-l", f"kdag.dev/task=square,kdag.dev/dagrun={name}"
    )
    by_index = {tr["spec"]["mapIndex"]: tr for tr in taskruns["items"]}
    assert sorted(by_index) == list(range(WIDTH))
    for index, tr in by_index.items():
        assert tr["metadata"]["name"] == names.taskrun_name(name, "square", index)
        assert tr["metadata"]["labels"]["kdag.dev/map-index"] == str(index)
        assert tr["status"]["phase"] == "Succeeded"
        assert tr["status"]["podName"] == names.pod_name(name, "square", 1, index, run_uid=uid)
        assert tr["status"]["renderedMapIndex"] == f"n{index}"
    pods = get(kubeconfig, e2e_namespace, "pods", "-l", f"kdag.dev/task=square,kdag.dev/dagrun={name}")
    assert {p["metadata"]["labels"]["kdag.dev/map-index"] for p in pods["items"]} == {
        str(i) for i in range(WIDTH)
    }
    numbers = get(kubeconfig, e2e_namespace, "taskrun", names.taskrun_name(name, "numbers"))
    assert numbers["status"]["xcomLengths"] == {"return_value": WIDTH}
    listed = kubectl(kubeconfig, "get", "taskruns", "-n", e2e_namespace, "-l", f"kdag.dev/dagrun={name}")
    assert "INDEX" in listed.splitlines()[0]

    # The reduce's pod: one projected volume, for `numbers` and the ten instances.
    total_pod = get(kubeconfig, e2e_namespace, "pod", names.pod_name(name, "total", 1, run_uid=uid))
    volumes = [
        v for v in total_pod["spec"]["volumes"] if "projected" in v and v["name"].startswith("xcom-in")
    ]
    assert len(volumes) == 1
    assert [s["configMap"]["name"] for s in volumes[0]["projected"]["sources"]] == [
        names.xcom_configmap_name(name, "numbers"),
        *(names.xcom_configmap_name(name, "square", i) for i in range(WIDTH)),
    ]

    # The rows and task states are the local run's.
    cluster = kdag_json("xcom", name, "-n", e2e_namespace, "--kubeconfig", kubeconfig)
    local = kdag_json("run", "--local", str(path), "--workdir", str(tmp_path / "local"))
    assert local["state"] == "success"
    assert cluster["tasks"] == local["tasks"]
    assert set(cluster["tasks"]) == {"numbers", "total", *(f"square[{i}]" for i in range(WIDTH))}
    assert user_rows(cluster) == user_rows(local)
    total = next(row["value"] for row in cluster["xcoms"] if row["task_id"] == "total")
    squares = [n * n for n in range(WIDTH)]
    assert total == {
        "sum": sum(squares),
        "all": squares,
        "some": [0, squares[-1]],
        "seen": [f"saw {n}" for n in range(WIDTH)],
    }
    assert {"task_id": "square", "map_index": 3, "key": "return_value", "value": 9} in cluster["xcoms"]
    logs = subprocess.run(
        [KDAG, "logs", name, "square", "--map-index", "3", "-n", e2e_namespace, "--kubeconfig", kubeconfig],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "Returned value was: 9" in logs.stdout, logs.stdout + logs.stderr


def test_what_a_failed_instance_pushed_reaches_an_all_done_task_as_in_airflow(
    kubeconfig: str, controller: ControllerProcess, e2e_namespace: str, tmp_path: Path
) -> None:
    """Airflow keeps the XComs a failed try pushed (it clears them only when the next try starts), and so
    does the instance's ConfigMap: its TaskRun lists the keys, so the projected volume downstream holds them.
    The expected values are what Apache Airflow 3.3.2 gives for this DAG (`airflow dags test`)."""
    path = LOCAL_DAGS / "mapping_failed_instance.py"
    loaded = compiler.load(path)
    for manifest in loaded.manifests:
        apply(kubeconfig, e2e_namespace, manifest)
    trigger(kubeconfig, e2e_namespace, loaded.name)
    run = wait_for_run(kubeconfig, e2e_namespace, loaded.name, timeout=600)
    name = run["metadata"]["name"]
    uid = run["metadata"]["uid"]
    assert run["status"]["phase"] == "Succeeded", run["status"]  # its leaf, cleanup, succeeded
    assert run["status"]["tasks"] == {"fragile": "Failed", "cleanup": "Succeeded"}
    failed = get(kubeconfig, e2e_namespace, "taskrun", names.taskrun_name(name, "fragile", 1))["status"]
    assert (failed["phase"], failed["xcomKeys"]) == ("Failed", ["seen"])
    cleanup_pod = get(kubeconfig, e2e_namespace, "pod", names.pod_name(name, "cleanup", 1, run_uid=uid))
    projected = next(v for v in cleanup_pod["spec"]["volumes"] if "projected" in v)
    items = [item for s in projected["projected"]["sources"] for item in s["configMap"]["items"]]
    assert {"key": "seen", "path": "fragile/1/seen"} in items

    cluster = kdag_json("xcom", name, "-n", e2e_namespace, "--kubeconfig", kubeconfig)
    cleanup = next(row["value"] for row in cluster["xcoms"] if row["task_id"] == "cleanup")
    assert cleanup == {"values": [1, 3], "seen": [1, 2, 3], "seen_by_failed": 2}
    assert {"task_id": "fragile", "map_index": 1, "key": "seen", "value": 2} in cluster["xcoms"]
    local = kdag_json("run", "--local", str(path), "--workdir", str(tmp_path / "local"))
    assert local["state"] == "success"
    assert cluster["tasks"] == local["tasks"]
    assert user_rows(cluster) == user_rows(local)


def test_a_mapped_task_group_runs_index_by_index_on_the_cluster_like_locally(
    kubeconfig: str, controller: ControllerProcess, e2e_namespace: str, tmp_path: Path
) -> None:
    path = LOCAL_DAGS / "mapping_group_upstream_failed.py"
    loaded = compiler.load(path)
    for task_id in ("op.add_1", "op.mul_2"):
        task_map = loaded.spec.task(task_id).map
        assert task_map is not None and task_map.group == "op"
        assert task_map.length.xcom is not None and task_map.length.xcom.task == "numbers"
    lit_map = loaded.spec.task("lit.times_two").map
    assert lit_map is not None and lit_map.group == "lit" and lit_map.length.literal == 3
    for manifest in loaded.manifests:
        apply(kubeconfig, e2e_namespace, manifest)
    trigger(kubeconfig, e2e_namespace, loaded.name)
    run = wait_for_run(kubeconfig, e2e_namespace, loaded.name, timeout=900)
    name = run["metadata"]["name"]
    status = run["status"]
    # total (all_done) is the run's leaf and succeeded: the run succeeds, as in Airflow.
    assert status["phase"] == "Succeeded", status
    assert status["tasks"] == {
        "numbers": "Succeeded",
        "op.add_1": "Failed",
        "op.mul_2": "UpstreamFailed",
        "total": "Succeeded",
        "lit.add_one": "Succeeded",
        "lit.times_two": "Succeeded",
    }
    assert status["mapped"] == {
        "op.add_1": {"length": 3, "phases": {"Failed": 1, "Succeeded": 2}},
        "op.mul_2": {"length": 3, "phases": {"Succeeded": 2, "UpstreamFailed": 1}},
        "lit.add_one": {"length": 3, "phases": {"Succeeded": 3}},
        "lit.times_two": {"length": 3, "phases": {"Succeeded": 3}},
    }
    assert status["progress"] == "14/14"  # 2 tasks and 4 mapped tasks of 3 instances

    # op.mul_2[1] is marked on its own: its TaskRun exists, UpstreamFailed, and it never had a pod.
    taskruns = get(
        kubeconfig, e2e_namespace, "taskruns", "-l", f"kdag.dev/task=op.mul_2,kdag.dev/dagrun={name}"
    )
    by_index = {tr["spec"]["mapIndex"]: tr for tr in taskruns["items"]}
    assert sorted(by_index) == [0, 1, 2]
    marked = by_index[1]
    assert marked["metadata"]["name"] == names.taskrun_name(name, "op.mul_2", 1)
    assert marked["status"]["phase"] == "UpstreamFailed"
    assert "podName" not in marked["status"]
    assert [by_index[i]["status"]["phase"] for i in (0, 2)] == ["Succeeded", "Succeeded"]
    pods = get(kubeconfig, e2e_namespace, "pods", "-l", f"kdag.dev/task=op.mul_2,kdag.dev/dagrun={name}")
    assert {p["metadata"]["labels"]["kdag.dev/map-index"] for p in pods["items"]} == {"0", "2"}

    # op.mul_2[2]'s pod: its index, and what op.add_1[2] pushed in its one projected volume (op.add_1[1]
    # failed before pushing: no source; index by index, op.add_1[0] may not have ended yet).
    pod = get(kubeconfig, e2e_namespace, "pod", by_index[2]["status"]["podName"])
    container = next(c for c in pod["spec"]["containers"] if c["name"] == "task")
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["KDAG_MAP_INDEX"] == "2"
    assert json.loads(env["KDAG_MAPPED"]) == {"op.add_1": 3}
    volumes = [v for v in pod["spec"]["volumes"] if "projected" in v and v["name"].startswith("xcom-in")]
    assert len(volumes) == 1
    sources = {s["configMap"]["name"]: s["configMap"]["items"] for s in volumes[0]["projected"]["sources"]}
    add_1 = sources[names.xcom_configmap_name(name, "op.add_1", 2)]
    assert {"key": "return_value", "path": "op.add_1/2/return_value"} in add_1
    assert names.xcom_configmap_name(name, "op.add_1", 1) not in sources

    # The rows and task states are the local run's.
    cluster = kdag_json("xcom", name, "-n", e2e_namespace, "--kubeconfig", kubeconfig)
    local = kdag_json("run", "--local", str(path), "--workdir", str(tmp_path / "local"))
    assert local["state"] == "success"
    assert cluster["tasks"] == local["tasks"]
    assert cluster["tasks"]["op.add_1[1]"] == "failed"
    assert cluster["tasks"]["op.mul_2[1]"] == "upstream_failed"
    assert user_rows(cluster) == user_rows(local)
    mul_2 = {row["map_index"]: row["value"] for row in cluster["xcoms"] if row["task_id"] == "op.mul_2"}
    assert mul_2 == {0: {"value": 4, "mine": 2}, 2: {"value": 8, "mine": 4}}
    assert next(row["value"] for row in cluster["xcoms"] if row["task_id"] == "total") == [4, 8]
    lit = sorted(row["value"] for row in cluster["xcoms"] if row["task_id"] == "lit.times_two")
    assert lit == [4, 6, 8]
