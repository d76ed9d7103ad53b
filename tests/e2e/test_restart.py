"""The controller killed (SIGKILL) while a task pod runs, restarted: the run completes, no pod duplicated."""

from __future__ import annotations

import pytest
from controller_support import ControllerProcess
from e2e_helpers import (
    apply,
    dag_manifest,
    pods,
    pods_per_task,
    python_task,
    runs_of,
    wait_for_run,
    wait_until,
)

pytestmark = pytest.mark.cluster


def _task_pod_phase(kubeconfig: str, namespace: str, dag: str, task_id: str) -> str | None:
    runs = runs_of(kubeconfig, namespace, dag)
    if len(runs) != 1:
        return None
    for pod in pods(kubeconfig, namespace, runs[0]["metadata"]["name"]):
        if pod["metadata"]["labels"]["kdag.dev/task"] == task_id:
            phase: str | None = (pod.get("status") or {}).get("phase")
            return phase
    return None


def test_killed_controller_resumes_without_duplicate_pods(
    kubeconfig: str, controller: ControllerProcess, e2e_namespace: str
) -> None:
    manifest = dag_manifest(
        "restart",
        [
            python_task("first", "import time\ndef first(**_):\n    time.sleep(6)\n    return 1\n", "first"),
            python_task("second", "def second(ti, **_):\n    return ti.xcom_pull(task_ids='first') + 1\n",
                        "second", upstream=["first"]),
            python_task("third", "def third(ti, **_):\n    return ti.xcom_pull(task_ids='second') + 1\n",
                        "third", upstream=["second"]),
        ],
        schedule="@once",
    )
    apply(kubeconfig, e2e_namespace, manifest)
    wait_until(
        lambda: _task_pod_phase(kubeconfig, e2e_namespace, "restart", "first") == "Running",
        "the first task's pod to run",
    )
    controller.kill()
    # The pod finishes while no controller is running: the restarted one must notice from state alone.
    wait_until(
        lambda: _task_pod_phase(kubeconfig, e2e_namespace, "restart", "first") == "Succeeded",
        "the first task's pod to finish",
    )
    controller.start()
    run = wait_for_run(kubeconfig, e2e_namespace, "restart")
    name = run["metadata"]["name"]
    assert run["status"]["phase"] == "Succeeded", run["status"]
    assert pods_per_task(kubeconfig, e2e_namespace, name) == {"first": 1, "second": 1, "third": 1}
    assert len(controller.pids) >= 2


def test_killed_while_creating_pods_resumes_without_duplicates(
    kubeconfig: str, controller: ControllerProcess, e2e_namespace: str
) -> None:
    """SIGKILL as soon as the fan-out's first pod appears, while its siblings' writes may be under way."""
    workers = [
        python_task(f"w{i}", f"def w(**_):\n    return {i}\n", "w", upstream=["root"]) for i in range(6)
    ]
    root = python_task("root", "def root(**_):\n    return 0\n", "root")
    manifest = dag_manifest("burst", [root, *workers], schedule="@once")
    apply(kubeconfig, e2e_namespace, manifest)
    wait_until(
        lambda: _task_pod_phase(kubeconfig, e2e_namespace, "burst", "root") == "Succeeded",
        "the root task to finish",
    )
    wait_until(lambda: _task_pod_phase(kubeconfig, e2e_namespace, "burst", "w0") is not None, "a worker pod",
               timeout=60)
    controller.kill()
    controller.start()
    run = wait_for_run(kubeconfig, e2e_namespace, "burst")
    assert run["status"]["phase"] == "Succeeded", run["status"]
    assert pods_per_task(kubeconfig, e2e_namespace, run["metadata"]["name"]) == {
        "root": 1, **{f"w{i}": 1 for i in range(6)},
    }
