"""Failures: retries with exponential backoff, UpstreamFailed propagation, trigger rules, timeouts."""

from __future__ import annotations

import pytest
from controller_support import ControllerProcess, kubectl
from e2e_helpers import (
    apply,
    dag_manifest,
    get,
    pods,
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

ALWAYS_FAILS = "def fail(**_):\n    raise RuntimeError('boom')\n"
FAILS_FIRST_ATTEMPT = (
    "import os\n"
    "def flaky(**_):\n"
    "    if os.environ['KDAG_ATTEMPT'] == '1':\n"
    "        raise RuntimeError('first attempt fails')\n"
    "    return 'second attempt'\n"
)
NOOP = "def noop(**_):\n    return 'ran'\n"


def test_retries_back_off_and_failures_propagate(
    kubeconfig: str, controller: ControllerProcess, e2e_namespace: str
) -> None:
    manifest = dag_manifest(
        "failures",
        [
            python_task("fails", ALWAYS_FAILS, "fail", retries=2, retryDelaySeconds=2),
            python_task("child", NOOP, "noop", upstream=["fails"]),
            python_task("grandchild", NOOP, "noop", upstream=["child"]),
            python_task("cleanup", NOOP, "noop", upstream=["child"], triggerRule="all_done"),
            python_task("flaky", FAILS_FIRST_ATTEMPT, "flaky", retries=1, retryDelaySeconds=1),
            python_task("on_failure", NOOP, "noop", upstream=["fails"], triggerRule="one_failed"),
        ],
        schedule="@once",
    )
    apply(kubeconfig, e2e_namespace, manifest)
    run = wait_for_run(kubeconfig, e2e_namespace, "failures")
    name = run["metadata"]["name"]
    assert run["status"]["phase"] == "Failed"
    assert run["status"]["progress"] == "6/6"
    stalled = {c["type"]: c for c in run["status"]["conditions"]}["Stalled"]
    assert stalled["status"] == "True" and "fails" in stalled["message"]

    tasks = taskruns(kubeconfig, e2e_namespace, name)
    phases = {t: tr["status"]["phase"] for t, tr in tasks.items()}
    assert phases == {
        "fails": "Failed",
        "child": "UpstreamFailed",
        "grandchild": "UpstreamFailed",
        "cleanup": "Succeeded",
        "flaky": "Succeeded",
        "on_failure": "Succeeded",
    }
    assert tasks["fails"]["status"]["attempts"] == 3
    assert "boom" in tasks["fails"]["status"]["message"]
    assert tasks["flaky"]["status"]["attempts"] == 2

    run_pods = pods(kubeconfig, e2e_namespace, name)
    attempts = sorted(
        (p for p in run_pods if p["metadata"]["labels"]["kdag.dev/task"] == "fails"),
        key=lambda p: int(p["metadata"]["labels"]["kdag.dev/attempt"]),
    )
    assert [p["metadata"]["labels"]["kdag.dev/attempt"] for p in attempts] == ["1", "2", "3"]
    # Backoff 2 s, then 4 s: each attempt's pod is created at least that long after the previous one ended.
    for previous, following, delay in zip(attempts, attempts[1:], (2, 4), strict=False):
        ended = max(
            time_of(s["state"]["terminated"]["finishedAt"]) for s in previous["status"]["containerStatuses"]
        )
        gap = (time_of(following["metadata"]["creationTimestamp"]) - ended).total_seconds()
        assert gap >= delay, f"attempt {following['metadata']['name']} started {gap} s after the previous"
    assert "child" not in {p["metadata"]["labels"]["kdag.dev/task"] for p in run_pods}


def test_timeout_fails_the_attempt(
    kubeconfig: str, controller: ControllerProcess, e2e_namespace: str
) -> None:
    sleeper = "import time\ndef sleep(**_):\n    time.sleep(120)\n"
    manifest = dag_manifest(
        "timeout",
        [
            python_task("slow", sleeper, "sleep", timeoutSeconds=3),
            python_task("after", NOOP, "noop", upstream=["slow"]),
        ],
        schedule="@once",
    )
    apply(kubeconfig, e2e_namespace, manifest)
    run = wait_for_run(kubeconfig, e2e_namespace, "timeout", timeout=120)
    tasks = taskruns(kubeconfig, e2e_namespace, run["metadata"]["name"])
    assert run["status"]["phase"] == "Failed"
    assert tasks["slow"]["status"]["phase"] == "Failed"
    assert "timed out" in tasks["slow"]["status"]["message"]
    assert tasks["after"]["status"]["phase"] == "UpstreamFailed"
    started = time_of(tasks["slow"]["status"]["startTime"])
    finished = time_of(tasks["slow"]["status"]["finishTime"])
    assert (finished - started).total_seconds() < 100, "the attempt ran to the end of its sleep"


def test_bad_xcoms_fail_the_task_and_nothing_downstream_runs(
    kubeconfig: str, controller: ControllerProcess, e2e_namespace: str
) -> None:
    manifest = dag_manifest(
        "bad-xcoms",
        [
            python_task("not_json", "def f(**_):\n    return object()\n", "f"),
            python_task("too_big", "def f(**_):\n    return 'x' * 1100000\n", "f"),
            python_task("after_not_json", NOOP, "noop", upstream=["not_json"]),
            python_task("after_too_big", NOOP, "noop", upstream=["too_big"]),
        ],
        schedule="@once",
    )
    apply(kubeconfig, e2e_namespace, manifest)
    run = wait_for_run(kubeconfig, e2e_namespace, "bad-xcoms")
    name = run["metadata"]["name"]
    tasks = taskruns(kubeconfig, e2e_namespace, name)
    assert run["status"]["phase"] == "Failed"
    assert tasks["not_json"]["status"]["phase"] == "Failed"
    assert "XCom 'return_value' of task 'not_json' is not JSON-serialisable: object" in (
        tasks["not_json"]["status"]["message"]
    )
    assert tasks["too_big"]["status"]["phase"] == "Failed"
    assert "a task's XComs must fit in 1032192 bytes (one ConfigMap)" in tasks["too_big"]["status"]["message"]
    assert tasks["after_not_json"]["status"]["phase"] == "UpstreamFailed"
    assert tasks["after_too_big"]["status"]["phase"] == "UpstreamFailed"
    assert {p["metadata"]["labels"]["kdag.dev/task"] for p in pods(kubeconfig, e2e_namespace, name)} == {
        "not_json", "too_big",
    }


def test_a_deleted_pod_is_a_failed_attempt(
    kubeconfig: str, controller: ControllerProcess, e2e_namespace: str
) -> None:
    source = (
        "import os, time\n"
        "def slow_first(**_):\n"
        "    if os.environ['KDAG_ATTEMPT'] == '1':\n"
        "        time.sleep(120)\n"
        "    return 'attempt ' + os.environ['KDAG_ATTEMPT']\n"
    )
    apply(kubeconfig, e2e_namespace, dag_manifest(
        "deleted-pod", [python_task("victim", source, "slow_first", retries=1, retryDelaySeconds=1)],
        schedule="@once",
    ))
    run_name = wait_until(lambda: _running_pod(kubeconfig, e2e_namespace, "deleted-pod"), "a running pod")
    run_uid = get(kubeconfig, e2e_namespace, "dagrun", run_name)["metadata"]["uid"]
    pod_name = names.pod_name(run_name, "victim", 1, run_uid=run_uid)
    kubectl(kubeconfig, "delete", "pod", "-n", e2e_namespace, pod_name, "--wait=false")
    run = wait_for_run(kubeconfig, e2e_namespace, "deleted-pod")
    victim = taskruns(kubeconfig, e2e_namespace, run["metadata"]["name"])["victim"]
    assert run["status"]["phase"] == "Succeeded", run["status"]
    assert victim["status"]["attempts"] == 2
    assert xcoms(kubeconfig, e2e_namespace, run_name, "victim")["return_value"] == "attempt 2"


def _running_pod(kubeconfig: str, namespace: str, dag: str) -> str | None:
    """The run name once its first pod runs."""
    for run in runs_of(kubeconfig, namespace, dag):
        name: str = run["metadata"]["name"]
        if any((p.get("status") or {}).get("phase") == "Running" for p in pods(kubeconfig, namespace, name)):
            return name
    return None


def test_a_pod_the_api_server_refuses_fails_its_task_at_once_quoting_why(
    kubeconfig: str, controller: ControllerProcess, e2e_namespace: str
) -> None:
    """Over a ResourceQuota: not retried every 5 s in silence, but Failed with the API server's reason, a
    PodRefused Event, and the run Failed (Stalled) naming the task, whatever the task's retries."""
    quota = {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": "small"},
        "spec": {"hard": {"requests.memory": "1Gi"}},
    }
    apply(kubeconfig, e2e_namespace, quota)
    big = python_task("big", NOOP, "noop", retries=3, resources={"requests": {"memory": "64Gi"}})
    apply(kubeconfig, e2e_namespace, dag_manifest("over-quota", [big], schedule="@once"))
    run = wait_for_run(kubeconfig, e2e_namespace, "over-quota", timeout=60)
    assert run["status"]["phase"] == "Failed"
    stalled = {c["type"]: c for c in run["status"]["conditions"]}["Stalled"]
    assert stalled["status"] == "True" and "big" in stalled["message"]
    task = taskruns(kubeconfig, e2e_namespace, run["metadata"]["name"])["big"]
    assert task["status"]["phase"] == "Failed" and task["status"]["attempts"] == 1
    assert "exceeded quota" in task["status"]["message"], task["status"]["message"]
    refused = ("--field-selector", "reason=PodRefused", "-o", "json")
    events = kubectl(kubeconfig, "get", "events", "-n", e2e_namespace, *refused)
    assert "exceeded quota" in events
    assert pods(kubeconfig, e2e_namespace, run["metadata"]["name"]) == []
