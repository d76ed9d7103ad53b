"""The chaos run's plan and checks, without a cluster: the DAG's shape, the values its tasks compute (through
the runner, in a local run), the blows, and the checks finding what they should."""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from chaos_plan import (
    APISERVER,
    CONTROLLER,
    DELIBERATE,
    KUBELET,
    LAYER_WIDTHS,
    RETRIES,
    TAIL_PAUSE,
    ChaosTask,
    attempt_findings,
    build_dag,
    dag_spec,
    disruption_plan,
    expected_values,
    expected_xcoms,
    xcom_findings,
)
from kdag import names

SEED = 1


def layer_of(task_id: str) -> int:
    return int(task_id[1 : task_id.index("-")])


def test_the_dag_fans_out_and_in_layer_by_layer() -> None:
    tasks = build_dag(SEED)
    assert len(tasks) == sum(LAYER_WIDTHS) == 54
    assert [task.id for task in tasks if not task.upstream] == ["l0-00"]
    feeds: dict[str, set[str]] = defaultdict(set)
    for task in tasks:
        assert list(task.upstream) == sorted(set(task.upstream))
        assert all(layer_of(task.id) - 2 <= layer_of(parent) < layer_of(task.id) for parent in task.upstream)
        assert any(layer_of(parent) == layer_of(task.id) - 1 for parent in task.upstream) or not task.upstream
        for parent in task.upstream:
            feeds[parent].add(task.id)
    last = len(LAYER_WIDTHS) - 1
    for task in tasks:
        if layer_of(task.id) < last:
            assert any(layer_of(child) == layer_of(task.id) + 1 for child in feeds[task.id]), task.id
    assert max(len(task.upstream) for task in tasks) >= 3  # fan-in
    assert max(len(children) for children in feeds.values()) >= 3  # fan-out


def test_chosen_tasks_fail_their_first_tries_and_keep_retries_to_spare() -> None:
    tasks = build_dag(SEED)
    assert sorted(task.fail_tries for task in tasks if task.fail_tries) == [1] * 9 + [2] * 3
    assert all(task.fail_tries <= RETRIES - 2 for task in tasks)
    tail = {task.id for task in tasks if task.id.startswith(f"l{len(LAYER_WIDTHS) - 1}-")}
    assert all(0.2 <= task.pause <= 1.0 for task in tasks if task.id not in tail)
    assert all(task.pause == TAIL_PAUSE for task in tasks if task.id in tail)


def test_the_dag_is_the_same_for_a_seed_and_another_for_another() -> None:
    assert build_dag(SEED) == build_dag(SEED)
    assert build_dag(SEED) != build_dag(SEED + 1)


def test_the_dag_passes_the_validator_the_webhook_runs() -> None:
    from kdag.api.models import DAGSpec
    from kdag.api.validation import dag_spec_problems

    spec = dag_spec(build_dag(SEED))
    assert dag_spec_problems(spec) == []
    DAGSpec.model_validate(spec)
    for task in spec["tasks"]:
        compile(task["python"]["source"], task["id"], "exec")


def test_expected_values_chain_each_task_to_its_upstream_values() -> None:
    def sha(text: str) -> str:
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    tasks = [
        ChaosTask("a", (), 0, 0.2),
        ChaosTask("b", ("a",), 1, 0.2),
        ChaosTask("c", ("a", "b"), 0, 0.2),
    ]
    a = sha("a<-")
    b = sha(f"b<-{a}")
    assert expected_values(tasks) == {"a": a, "b": b, "c": sha(f"c<-{a}|{b}")}
    assert expected_xcoms(tasks, {"a": 1, "b": 2, "c": 1})["c"] == {
        "inputs": [a, b],
        "try": 1,
        "return_value": sha(f"c<-{a}|{b}"),
    }


def test_the_tasks_compute_the_expected_xcoms_through_the_runner(tmp_path: Path) -> None:
    """A small DAG of the same tasks, run locally: the values, the tries and the retries are what the
    checks expect, and a failed try's `failed_try` is gone once a later one succeeded."""
    from kdag.api.models import DAGSpec
    from kdag.local.run import LocalDag, run_local

    tasks = build_dag(SEED, widths=(1, 3, 2), failing=2, failing_twice=1)
    assert sorted(task.fail_tries for task in tasks) == [0, 0, 0, 0, 1, 2]
    spec = DAGSpec.model_validate(dag_spec(tasks, retry_delay_seconds=0))
    result = run_local(LocalDag("chaos-local", spec), tmp_path / "work")

    assert result.state == "success", {tid: report.message for tid, report in result.tasks.items()}
    tries = {task_id: report.attempts for task_id, report in result.tasks.items()}
    assert tries == {task.id: task.fail_tries + 1 for task in tasks}
    found: dict[str, dict[str, object]] = defaultdict(dict)
    for row in result.xcoms:
        if not row.key.startswith("__"):
            found[row.task_id][row.key] = row.value
    findings = xcom_findings(tasks, found, tries)
    assert findings.problems == []
    assert findings.counts["xcoms_checked"] == 3 * len(tasks)


def test_the_plan_strikes_while_the_run_goes_on() -> None:
    plan = disruption_plan(SEED, 54)
    assert [blow.target for blow in plan].count(CONTROLLER) == 10
    assert [blow.target for blow in plan].count(APISERVER) == 1
    assert [blow.target for blow in plan].count(KUBELET) == 1
    assert [blow.after_finished for blow in plan] == sorted(blow.after_finished for blow in plan)
    assert all(0 <= blow.after_finished <= 27 for blow in plan)
    (apiserver,) = (blow for blow in plan if blow.target == APISERVER)
    (kubelet,) = (blow for blow in plan if blow.target == KUBELET)
    assert 8 <= apiserver.after_finished <= 16
    assert 16 <= kubelet.after_finished <= 27
    assert all(blow.down_for == 0 for blow in plan if blow.target != CONTROLLER)
    assert disruption_plan(SEED, 54) == plan


# --- the checks, on what a run could leave -------------------------------------------------------------

TASKS = [ChaosTask("a", (), 1, 0.2), ChaosTask("b", ("a",), 0, 0.2)]
RUN = {"metadata": {"name": "chaos-manual-seed1", "uid": "0123abcd-0000-0000-0000-000000000000"}}
OUTAGE = (1_800_000_000.0, 1_800_000_010.0)


def taskrun(task_id: str, attempts: int, phase: str = "Succeeded") -> dict[str, Any]:
    return {"spec": {"taskId": task_id}, "status": {"phase": phase, "attempts": attempts}}


def pod(task_id: str, attempt: int, exit_code: int, error: str = "", finished: float = 1_700_000_000.0,
        uid: str = "") -> dict[str, Any]:
    name = names.pod_name(RUN["metadata"]["name"], task_id, attempt, run_uid=RUN["metadata"]["uid"])
    message = json.dumps({"error": error} if error else {"xcomKeys": ["return_value"], "bytes": 20})
    finished_at = datetime.fromtimestamp(finished, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "metadata": {
            "name": name,
            "uid": uid or f"uid-{name}",
            "labels": {names.TASK_LABEL: task_id, names.ATTEMPT_LABEL: str(attempt)},
        },
        "status": {
            "phase": "Succeeded" if exit_code == 0 else "Failed",
            "containerStatuses": [
                {"name": "task", "state": {"terminated": {
                    "exitCode": exit_code, "message": message, "finishedAt": finished_at,
                }}}
            ],
        },
    }


def clean_pods() -> list[dict[str, Any]]:
    return [pod("a", 1, 1, f"RuntimeError: {DELIBERATE} 1"), pod("a", 2, 0), pod("b", 1, 0)]


def seen(pods: list[dict[str, Any]]) -> dict[str, set[str]]:
    return {p["metadata"]["name"]: {p["metadata"]["uid"]} for p in pods}


def test_a_clean_run_has_no_attempt_problems() -> None:
    pods = clean_pods()
    findings = attempt_findings(TASKS, [taskrun("a", 2), taskrun("b", 1)], pods, seen(pods), RUN, [])
    assert findings.problems == []
    assert findings.counts["attempts"] == 3
    assert findings.counts["deliberate_failures"] == 1


def test_a_pod_made_twice_and_a_second_pod_of_an_attempt_are_duplicates() -> None:
    pods = clean_pods()
    uids = seen(pods)
    uids[pods[2]["metadata"]["name"]].add("another-uid")
    copy = pod("b", 1, 0)
    copy["metadata"]["name"] += "-copy"
    findings = attempt_findings(TASKS, [taskrun("a", 2), taskrun("b", 1)], [*pods, copy], uids, RUN, [])
    assert findings.counts["duplicate_pods"] == 2
    assert len(findings.problems) == 2


def test_a_try_beyond_the_planned_ones_is_an_extra_attempt() -> None:
    pods = [*clean_pods()[:1], pod("a", 2, 1, "RuntimeError: boom"), pod("a", 3, 0), pod("b", 1, 0)]
    findings = attempt_findings(TASKS, [taskrun("a", 3), taskrun("b", 1)], pods, seen(pods), RUN, [])
    assert findings.counts["unexplained_failures"] == 1
    assert findings.counts["extra_attempts"] == 1


def test_an_xcom_write_the_api_server_restart_failed_is_allowed_only_during_the_outage() -> None:
    error = "cannot write XComs to ConfigMap ns/cm: PATCH ...: cannot reach https://10.96.0.1:443: refused"
    for finished, allowed in ((OUTAGE[0] + 5, True), (OUTAGE[1] + 20, True), (OUTAGE[1] + 120, False)):
        pods = [*clean_pods()[:2], pod("b", 1, 3, error, finished=finished), pod("b", 2, 0)]
        taskruns = [taskrun("a", 2), taskrun("b", 2)]
        findings = attempt_findings(TASKS, taskruns, pods, seen(pods), RUN, [OUTAGE])
        assert (findings.problems == []) is allowed, findings.problems
        assert findings.counts["outage_failures"] == int(allowed)


def test_missing_pods_unrecorded_pods_and_unfinished_tasks_are_found() -> None:
    pods = [pod("a", 2, 0), pod("b", 1, 0), pod("b", 2, 0)]
    findings = attempt_findings(
        TASKS, [taskrun("a", 2), taskrun("b", 1, phase="Running")], pods, seen(pods), RUN, []
    )
    assert findings.counts["missing_pods"] == 1
    assert findings.counts["unrecorded_pods"] == 1
    assert findings.counts["unsucceeded_tasks"] == 1


def test_a_task_without_its_taskrun_or_with_two_is_found() -> None:
    pods = clean_pods()
    findings = attempt_findings(TASKS, [taskrun("a", 2), taskrun("a", 2)], pods, seen(pods), RUN, [])
    assert findings.counts["duplicate_taskruns"] == 2


GONE = object()
"""A key the store lost."""


@pytest.mark.parametrize(
    ("changes", "counter"),
    [
        (None, "lost_xcoms"),
        ({"inputs": [None]}, "lost_xcoms"),
        ({"return_value": GONE}, "lost_xcoms"),
        ({"inputs": ["nope"]}, "wrong_xcoms"),
        ({"try": 2}, "wrong_xcoms"),
        ({"failed_try": 1}, "stale_xcoms"),
    ],
)
def test_lost_wrong_and_stale_xcoms_are_found(changes: dict[str, object] | None, counter: str) -> None:
    tries = {"a": 2, "b": 1}
    expected = expected_xcoms(TASKS, tries)
    assert xcom_findings(TASKS, expected, tries).problems == []
    changed = {**expected["b"], **(changes or {})}
    b = None if changes is None else {key: value for key, value in changed.items() if value is not GONE}
    findings = xcom_findings(TASKS, {"a": expected["a"], "b": b}, tries)
    assert findings.counts[counter] >= 1
    assert findings.problems


def test_a_container_the_kubelet_restart_kept_from_starting_is_allowed_only_then() -> None:
    error = 'failed to start containerd task "e42": context canceled: unknown'
    for finished, allowed in ((OUTAGE[0] + 1, True), (OUTAGE[1] + 120, False)):
        pods = [*clean_pods()[:2], pod("b", 1, 128, error, finished=finished), pod("b", 2, 0)]
        taskruns = [taskrun("a", 2), taskrun("b", 2)]
        findings = attempt_findings(TASKS, taskruns, pods, seen(pods), RUN, [], [OUTAGE])
        assert (findings.problems == []) is allowed, findings.problems
        # Not for an API server outage: a container that did not start is the kubelet's doing.
        assert attempt_findings(TASKS, taskruns, pods, seen(pods), RUN, [OUTAGE]).problems != []
