"""DAG shapes and task kinds: a diamond, fan-out/fan-in, and a command task passing XComs to Python."""

from __future__ import annotations

import json

import pytest
from controller_support import SHELL_IMAGE, ControllerProcess
from e2e_helpers import apply, load_example, pods_per_task, task_log, taskruns, wait_for_run, xcoms

pytestmark = pytest.mark.cluster


def test_diamond(kubeconfig: str, controller: ControllerProcess, e2e_namespace: str) -> None:
    apply(kubeconfig, e2e_namespace, load_example("diamond.yaml"))
    run = wait_for_run(kubeconfig, e2e_namespace, "diamond")
    name = run["metadata"]["name"]
    assert run["status"]["phase"] == "Succeeded", run["status"]
    assert json.loads(xcoms(kubeconfig, e2e_namespace, name, "join")["return_value"]) == {
        "left": 11, "right": 20, "sum": 31,
    }
    tasks = taskruns(kubeconfig, e2e_namespace, name)
    join_start = tasks["join"]["status"]["startTime"]
    for upstream in ("left", "right"):
        assert tasks[upstream]["status"]["finishTime"] <= join_start
    assert pods_per_task(kubeconfig, e2e_namespace, name) == dict.fromkeys(tasks, 1)


def test_fan_out_fan_in(kubeconfig: str, controller: ControllerProcess, e2e_namespace: str) -> None:
    before = controller.metrics()
    apply(kubeconfig, e2e_namespace, load_example("fan-out-fan-in.yaml"))
    run = wait_for_run(kubeconfig, e2e_namespace, "fan-out-fan-in")
    name = run["metadata"]["name"]
    assert run["status"]["phase"] == "Succeeded", run["status"]
    assert run["status"]["progress"] == "5/5"
    for shard, expected in enumerate((1 + 4, 9 + 16, 25 + 36)):
        assert xcoms(kubeconfig, e2e_namespace, name, f"worker_{shard}")["return_value"] == str(expected)
    assert json.loads(xcoms(kubeconfig, e2e_namespace, name, "gather")["return_value"]) == 91
    _report_writes(before, controller.metrics(), tasks=5)


def test_command_task_passes_xcoms_as_env_and_files(
    kubeconfig: str, controller: ControllerProcess, e2e_namespace: str
) -> None:
    manifest = load_example("shell-task.yaml")
    for task in manifest["spec"]["tasks"]:
        if "command" in task:
            task["image"] = SHELL_IMAGE
    apply(kubeconfig, e2e_namespace, manifest)
    run = wait_for_run(kubeconfig, e2e_namespace, "shell-task")
    name = run["metadata"]["name"]
    assert run["status"]["phase"] == "Succeeded", run["status"]
    produced = xcoms(kubeconfig, e2e_namespace, name, "produce")
    assert produced["return_value"] == "from sh"
    assert json.loads(produced["answer"]) == {"n": 42}
    consumed = json.loads(xcoms(kubeconfig, e2e_namespace, name, "consume")["return_value"])
    assert consumed == {"env": "from sh", "answer_env": '{"n":42}', "file": '{"n":42}', "pulled": {"n": 42}}
    reported = json.loads(xcoms(kubeconfig, e2e_namespace, name, "report")["return_value"])
    assert reported == {"greeting": "from sh", "answer": {"n": 42}}
    tasks = taskruns(kubeconfig, e2e_namespace, name)
    report_log = task_log(kubeconfig, e2e_namespace, tasks["report"]["status"]["podName"])
    assert 'GREETING=from sh answer={"n":42}' in report_log
    assert "GREETING=from sh" in task_log(kubeconfig, e2e_namespace, tasks["consume"]["status"]["podName"])
    assert sorted(tasks["produce"]["status"]["xcomKeys"]) == ["answer", "return_value"]


def _metric_values(text: str, metric: str) -> dict[str, float]:
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(metric + "{"):
            labels, value = line.rsplit(" ", 1)
            values[labels] = float(value)
    return values


def _report_writes(before: str, after: str, tasks: int) -> None:
    """Print the controller's API writes for this run (other tests may run concurrently: an upper bound)."""
    old = _metric_values(before, "kdag_api_writes_total")
    new = _metric_values(after, "kdag_api_writes_total")
    delta = {k: v - old.get(k, 0.0) for k, v in new.items() if v - old.get(k, 0.0)}
    total = sum(delta.values())
    print(f"controller writes for {tasks} tasks: {total:.0f} ({total / tasks:.1f} per task): {delta}")
