"""Schedules make runs named by their tick (a data-interval timetable's when its interval ends, its logical
date the interval's start); editing a DAG never changes a run under way."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from controller_support import ControllerProcess
from e2e_helpers import (
    KDAG,
    apply,
    dag_manifest,
    get,
    python_task,
    runs_of,
    taskruns,
    time_of,
    wait_for_run,
    wait_until,
    xcoms,
)
from kdag import names

pytestmark = pytest.mark.cluster


def test_schedule_creates_runs_named_by_their_tick(
    kubeconfig: str, controller: ControllerProcess, e2e_namespace: str
) -> None:
    source = "def tick(ds, ts, **_):\n    return ts\n"
    apply(kubeconfig, e2e_namespace, dag_manifest("every-minute", [python_task("tick", source, "tick")],
                                                  schedule="* * * * *"))
    run = wait_for_run(kubeconfig, e2e_namespace, "every-minute", timeout=150)
    name = run["metadata"]["name"]
    logical = time_of(run["spec"]["logicalDate"])
    assert (logical.second, logical.microsecond) == (0, 0)
    assert name == names.scheduled_run_name("every-minute", logical.astimezone(UTC))
    assert run["status"]["phase"] == "Succeeded", run["status"]
    assert time_of(xcoms(kubeconfig, e2e_namespace, name, "tick")["return_value"]) == logical
    dag = get(kubeconfig, e2e_namespace, "dag", "every-minute")
    assert dag["status"]["lastRun"] == name


def test_a_data_interval_timetable_runs_when_its_interval_ends(
    kubeconfig: str, controller: ControllerProcess, e2e_namespace: str
) -> None:
    """Airflow's CronDataIntervalTimetable every minute: the run due at T covers [T - 1 min, T] and its
    logical date is T - 1 min; the task sees the interval (KDAG_DATA_INTERVAL_*). A run made by hand gets
    the interval Airflow infers for a manual run: the last complete one. The timetable starts two minutes
    ago with catchup, so the intervals that ended meanwhile are due at once (a live tick is
    `test_schedule_creates_runs_named_by_their_tick`'s)."""
    started = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=2)
    source = (
        "import os\n"
        "def interval(ts, **_):\n"
        "    return [ts, os.environ['KDAG_DATA_INTERVAL_START'], os.environ['KDAG_DATA_INTERVAL_END']]\n"
    )
    apply(kubeconfig, e2e_namespace, dag_manifest(
        "intervals", [python_task("interval", source, "interval")],
        timetable={"cron": "* * * * *", "dataIntervals": True, "start": f"{started:%Y-%m-%dT%H:%M:%SZ}"},
        catchup=True,
    ))

    def first_finished() -> dict[str, Any] | None:
        runs = sorted(runs_of(kubeconfig, e2e_namespace, "intervals"), key=lambda r: r["metadata"]["name"])
        done = [r for r in runs if r.get("status", {}).get("phase") in ("Succeeded", "Failed")]
        return done[0] if done else None

    run = wait_until(first_finished, "the first scheduled run to finish", timeout=180)
    assert run["status"]["phase"] == "Succeeded", run["status"]
    start, end = time_of(run["spec"]["dataInterval"]["start"]), time_of(run["spec"]["dataInterval"]["end"])
    assert end - start == timedelta(minutes=1)
    assert time_of(run["spec"]["logicalDate"]) == start
    assert run["metadata"]["name"] == names.scheduled_run_name("intervals", end.astimezone(UTC))
    ts, env_start, env_end = json.loads(xcoms(kubeconfig, e2e_namespace, run["metadata"]["name"], "interval")[
        "return_value"
    ])
    assert (time_of(ts), time_of(env_start), time_of(env_end)) == (start, start, end)

    manual = {
        "apiVersion": "kdag.dev/v1alpha1",
        "kind": "DAGRun",
        "metadata": {"name": "intervals-by-hand"},
        "spec": {"dagRef": {"name": "intervals"}, "logicalDate": "2024-01-02T03:04:05Z"},
    }
    apply(kubeconfig, e2e_namespace, manual)
    wait_until(
        lambda: get(kubeconfig, e2e_namespace, "dagrun", "intervals-by-hand").get("status", {}).get("phase")
        in ("Succeeded", "Failed"),
        "the manual run to finish",
    )
    value = json.loads(xcoms(kubeconfig, e2e_namespace, "intervals-by-hand", "interval")["return_value"])
    assert value[1:] == ["2024-01-02T03:03:00Z", "2024-01-02T03:04:00Z"]


def test_editing_a_dag_does_not_change_a_run_under_way(
    kubeconfig: str, controller: ControllerProcess, e2e_namespace: str
) -> None:
    first = "import time\ndef first(**_):\n    time.sleep(5)\n"

    def manifest(version: str) -> dict[str, object]:
        second = f"def second(**_):\n    return '{version}'\n"
        return dag_manifest(
            "edited", [python_task("first", first, "first"),
                       python_task("second", second, "second", upstream=["first"])],
            schedule="@once",
        )

    apply(kubeconfig, e2e_namespace, manifest("before"))
    runs = wait_until(lambda: runs_of(kubeconfig, e2e_namespace, "edited"), "the @once run")
    run_name = runs[0]["metadata"]["name"]
    wait_until(lambda: "first" in taskruns(kubeconfig, e2e_namespace, run_name), "the first TaskRun")
    apply(kubeconfig, e2e_namespace, manifest("after"))
    run = wait_for_run(kubeconfig, e2e_namespace, "edited")
    assert run["metadata"]["name"] == run_name, "editing an @once DAG started another run"
    assert run["status"]["phase"] == "Succeeded", run["status"]
    assert xcoms(kubeconfig, e2e_namespace, run_name, "second")["return_value"] == "before"
    dag = get(kubeconfig, e2e_namespace, "dag", "edited")
    assert dag["status"]["observedGeneration"] == dag["metadata"]["generation"] == 2


SLOW2 = """\
import time

from airflow import DAG
from airflow.operators.python import PythonOperator

VERSION = "{version}"


def step1():
    time.sleep({sleep})
    return f"{{VERSION}}-step1"


def step2(ti):
    return f"{{VERSION}}-step2 saw {{ti.xcom_pull(task_ids='step1')}}"


def step3(ti):
    return f"{{VERSION}}-step3 saw {{ti.xcom_pull(task_ids='step2')}}"


with DAG("slow2", schedule=None):
    PythonOperator(task_id="step1", python_callable=step1) >> PythonOperator(
        task_id="step2", python_callable=step2
    ) >> PythonOperator(task_id="step3", python_callable=step3)
"""


def test_a_run_sees_one_version_of_a_python_dag_from_start_to_end(
    kubeconfig: str, controller: ControllerProcess, e2e_namespace: str, tmp_path: Path
) -> None:
    """`kdag apply` v1, a run starts, `kdag apply` v3 while step1 runs: every task of that run runs v1's
    file (the DAGVersion it follows names v1's source ConfigMap), the next run v3's; once no run reads v1's
    ConfigMap, the next apply deletes it."""
    path = tmp_path / "slow2.py"

    def kdag(*args: str) -> str:
        command = [KDAG, *args, "-n", e2e_namespace, "--kubeconfig", kubeconfig]
        done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    def source_of_dag() -> str:
        name: str = get(kubeconfig, e2e_namespace, "dag", "slow2")["spec"]["pythonFile"]["configMap"]
        return name

    path.write_text(SLOW2.format(version="v1", sleep=15))
    kdag("apply", str(path))
    v1 = source_of_dag()
    first = kdag("trigger", "slow2").strip()
    wait_until(
        lambda: (taskruns(kubeconfig, e2e_namespace, first).get("step1") or {}).get("status", {}).get("phase")
        == "Running",
        "step1 of the first run to be running",
    )
    path.write_text(SLOW2.format(version="v3", sleep=0))
    applied = kdag("apply", str(path))
    v3 = source_of_dag()
    assert v3 != v1
    assert f"configmap/{v1} deleted" not in applied, "the first run still reads v1"
    wait_until(
        lambda: get(kubeconfig, e2e_namespace, "dagrun", first).get("status", {}).get("phase")
        in ("Succeeded", "Failed"),
        "the first run to finish",
        timeout=240,
    )
    run = get(kubeconfig, e2e_namespace, "dagrun", first)
    assert run["status"]["phase"] == "Succeeded", run["status"]
    version = get(kubeconfig, e2e_namespace, "dagversion", run["status"]["dagVersion"])
    assert version["spec"]["dag"]["pythonFile"]["configMap"] == v1
    assert xcoms(kubeconfig, e2e_namespace, first, "step1")["return_value"] == "v1-step1"
    assert xcoms(kubeconfig, e2e_namespace, first, "step2")["return_value"] == "v1-step2 saw v1-step1"
    assert xcoms(kubeconfig, e2e_namespace, first, "step3")["return_value"] == (
        "v1-step3 saw v1-step2 saw v1-step1"
    )

    second = kdag("trigger", "slow2", "--wait").strip().splitlines()[0]
    assert xcoms(kubeconfig, e2e_namespace, second, "step3")["return_value"] == (
        "v3-step3 saw v3-step2 saw v3-step1"
    )
    # No run under way reads v1 now: the next apply deletes it; v3 stays, owned by the DAG.
    assert f"configmap/{v1} deleted" in kdag("apply", str(path))
    sources = get(kubeconfig, e2e_namespace, "configmaps", "-l", "kdag.dev/dag=slow2")["items"]
    kept = {cm["metadata"]["name"]: cm for cm in sources if cm["metadata"]["name"].startswith("slow2-source")}
    assert list(kept) == [v3]
    assert kept[v3]["immutable"] is True
    dag_uid = get(kubeconfig, e2e_namespace, "dag", "slow2")["metadata"]["uid"]
    assert [o["uid"] for o in kept[v3]["metadata"]["ownerReferences"]] == [dag_uid]
