"""A dynamically mapped task runs on the cluster as it runs locally: a 10-way mapped task over an upstream
XCom list and a reduce over its values. Each instance is a TaskRun `{run}-{slug}.{i}` (spec.mapIndex, the
`kdag.dev/map-index` label, the `Index` printer column) with its pod and its own XCom ConfigMap (the write
guard lets it write only that one); the reduce pod gets every instance's XComs through one projected
volume; the run's status summarises the mapped task; `kdag xcom -o json` gives the rows (with `map_index`)
and the task states (`each[i]`) of `kdag run --local -o json` (docs/design.md, "Mapped tasks")."""

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

pytestmark = pytest.mark.cluster

KDAG = str(Path(sys.executable).parent / "kdag")
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


def kdag_json(*args: str) -> dict[str, Any]:
    done = subprocess.run(
        [KDAG, *args, "-o", "json"], capture_output=True, text=True, timeout=600, check=False
    )
    assert done.stdout.count("\n") == 1, done.stdout + done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def rows(result: dict[str, Any]) -> list[str]:
    return sorted(
        json.dumps(row, sort_keys=True) for row in result["xcoms"] if not row["key"].startswith("__")
    )


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
        assert tr["status"]["podName"] == names.pod_name(name, "square", 1, index)
        assert tr["status"]["renderedMapIndex"] == f"n{index}"
    pods = get(kubeconfig, e2e_namespace, "pods", "-l", f"kdag.dev/task=square,kdag.dev/dagrun={name}")
    assert {p["metadata"]["labels"]["kdag.dev/map-index"] for p in pods["items"]} == {
        str(i) for i in range(WIDTH)
    }
    numbers = get(kubeconfig, e2e_namespace, "taskrun", names.taskrun_name(name, "numbers"))
    assert numbers["status"]["xcomLengths"] == {"return_value": WIDTH}
    listed = kubectl(kubeconfig, "get", "taskruns", "-n", e2e_namespace, "-l", f"kdag.dev/dagrun={name}")
    assert "INDEX" in listed.splitlines()[0]

    # The reduce's pod: one projected volume for the ten instances.
    total_pod = get(kubeconfig, e2e_namespace, "pod", names.pod_name(name, "total", 1))
    volumes = [
        v for v in total_pod["spec"]["volumes"] if "projected" in v and v["name"].startswith("xcom-in")
    ]
    assert len(volumes) == 1 and len(volumes[0]["projected"]["sources"]) == WIDTH

    # The rows and task states are the local run's.
    cluster = kdag_json("xcom", name, "-n", e2e_namespace, "--kubeconfig", kubeconfig)
    local = kdag_json("run", "--local", str(path), "--workdir", str(tmp_path / "local"))
    assert local["state"] == "success"
    assert cluster["tasks"] == local["tasks"]
    assert set(cluster["tasks"]) == {"numbers", "total", *(f"square[{i}]" for i in range(WIDTH))}
    assert rows(cluster) == rows(local)
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
