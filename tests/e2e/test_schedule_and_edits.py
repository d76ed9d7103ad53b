"""Schedules make runs named by their tick (a data-interval timetable's when its interval ends, its logical
date the interval's start); editing a DAG never changes a run under way."""

from __future__ import annotations

import json
from datetime import UTC, timedelta
from typing import Any

import pytest
from controller_support import ControllerProcess
from e2e_helpers import (
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
    the interval Airflow infers for a manual run: the last complete one."""
    source = (
        "import os\n"
        "def interval(ts, **_):\n"
        "    return [ts, os.environ['KDAG_DATA_INTERVAL_START'], os.environ['KDAG_DATA_INTERVAL_END']]\n"
    )
    apply(kubeconfig, e2e_namespace, dag_manifest(
        "intervals", [python_task("interval", source, "interval")],
        timetable={"cron": "* * * * *", "dataIntervals": True},
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
