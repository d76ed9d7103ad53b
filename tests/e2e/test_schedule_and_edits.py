"""Cron schedules make runs named by their tick; editing a DAG never changes a run under way."""

from __future__ import annotations

from datetime import UTC

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


def test_editing_a_dag_does_not_change_a_run_under_way(
    kubeconfig: str, controller: ControllerProcess, e2e_namespace: str
) -> None:
    first = "import time\ndef first(**_):\n    time.sleep(5)\n"

    def manifest(version: str) -> dict[str, object]:
        second = f"def second(**_):\n    return '{version}'\n"
        return dag_manifest(
            "edited", [python_task("first", first, "first"),
                       python_task("second", second, "second", upstream=["first"])]
        )

    apply(kubeconfig, e2e_namespace, manifest("before"))
    runs = wait_until(lambda: runs_of(kubeconfig, e2e_namespace, "edited"), "the initial run")
    run_name = runs[0]["metadata"]["name"]
    wait_until(lambda: "first" in taskruns(kubeconfig, e2e_namespace, run_name), "the first TaskRun")
    apply(kubeconfig, e2e_namespace, manifest("after"))
    run = wait_for_run(kubeconfig, e2e_namespace, "edited")
    assert run["metadata"]["name"] == run_name, "editing an unscheduled DAG started another run"
    assert run["status"]["phase"] == "Succeeded", run["status"]
    assert xcoms(kubeconfig, e2e_namespace, run_name, "second")["return_value"] == "before"
    dag = get(kubeconfig, e2e_namespace, "dag", "edited")
    assert dag["status"]["observedGeneration"] == dag["metadata"]["generation"] == 2
