"""A TriggerDagRunOperator's request on the controller's side, as pure functions: the report's
`triggerDagRun` (attempts), the TaskRun's `status.trigger` (settle), which DAG and which DAGRun name
(triggers, names), what an existing run of that name means, the DAGRun made, and the next attempt's
`KDAG_TRIGGERED_RUN` (triggers, render). No API; tests/handlers/test_trigger_handler.py runs the handler."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from kdag import names, triggers
from kdag.api.models import TaskPhase, TaskRunStatus, TriggeredRun, TriggerState
from kdag.attempts import Termination, attempt_result
from kdag.render import RunInfo, task_env
from kdag.settle import settle
from kdag.triggers import TriggerRequest
from test_render import RUN, SETTINGS, pod_with, render, terminated

NOW = datetime(2026, 1, 2, 3, 10, tzinfo=UTC)
UID = "5d0c2a7e-0000-4000-8000-000000000001"


def request_report(**request: Any) -> str:
    body = {"dagId": "target", "conf": {"n": 3}, "reset": False, "wait": True, **request}
    return json.dumps(
        {"xcomKeys": [], "bytes": 2, "reschedule": "2026-01-02T03:10:01Z", "triggerDagRun": body}
    )


def test_the_report_carries_the_request_on_a_reschedule() -> None:
    result = attempt_result(Termination(5, request_report(runId="r1", logicalDate="2026-01-01T00:00:00Z")))
    assert result.reschedule_at == datetime(2026, 1, 2, 3, 10, 1, tzinfo=UTC)
    assert result.trigger_request == TriggerRequest(
        dag_id="target",
        conf={"n": 3},
        run_id="r1",
        logical_date=datetime(2026, 1, 1, tzinfo=UTC),
        reset=False,
        wait=True,
    )
    assert result.message == "asked to trigger DAG 'target'"


@pytest.mark.parametrize(
    ("request_fields", "problem"),
    [
        ({"dagId": "no spaces"}, "triggerDagRun dagId must be a DAG id, got 'no spaces'"),
        ({"conf": [1]}, "triggerDagRun conf must be an object, got list"),
        ({"runId": ""}, "triggerDagRun runId must be a run id, got ''"),
        ({"logicalDate": "soon"}, "triggerDagRun logicalDate must be an RFC 3339 time, got 'soon'"),
    ],
)
def test_a_malformed_request_fails_the_attempt(request_fields: dict[str, Any], problem: str) -> None:
    result = attempt_result(Termination(5, request_report(**request_fields)))
    assert result.finished and not result.succeeded and result.reschedule_at is None
    assert result.message == "invalid termination report: " + problem


def test_settle_records_the_request_of_the_try_that_asked() -> None:
    """The request of attempt 3 after one reschedule: try 2; the patch replaces an older request whole."""
    task = RUN.dag.resolved_task("hello_task", SETTINGS.runner_image)
    older = TriggeredRun(dag_id="target", run="old", try_number=1, state=TriggerState.FAILED, message="x")
    current = TaskRunStatus(phase=TaskPhase.RUNNING, attempts=3, reschedules=1, start_time=NOW, trigger=older)
    pod = pod_with(render("hello_task", 3), "Failed", [terminated("task", 5, request_report())])
    outcome = settle(current, {3: pod}, task, NOW, run_name=RUN.name)
    assert outcome.phase == TaskPhase.UP_FOR_RESCHEDULE
    assert outcome.patch is not None
    patch = outcome.patch.to_patch()
    assert patch["reschedules"] == 2
    assert patch["trigger"] == {
        "dagId": "target",
        "runId": None,
        "run": None,
        "tryNumber": 2,
        "state": "Requested",
        "message": None,
        "reset": False,
        "conf": {"n": 3},
        "params": None,
        "logicalDate": None,
    }


def dag(name: str, dag_id: str | None = None) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"dagId": dag_id} if dag_id else {}}


def test_the_dag_is_found_by_its_dag_id() -> None:
    dags = [dag("etl", "etl_daily"), dag("target"), dag("twin-a", "twin"), dag("twin-b", "twin")]
    assert triggers.find_dag(dags, "etl_daily", "ns")[0] == dags[0]
    assert triggers.find_dag(dags, "target", "ns")[0] == dags[1]
    assert triggers.find_dag(dags, "etl", "ns") == (
        None,
        "DAG 'etl' does not exist in namespace 'ns' (no DAG has that dag id)",
    )
    assert triggers.find_dag(dags, "twin", "ns") == (
        None,
        "DAG 'twin' is ambiguous in namespace 'ns': the DAG objects twin-a, twin-b share it",
    )


def trigger(**fields: Any) -> TriggeredRun:
    return TriggeredRun.model_validate({"dagId": "target", "tryNumber": 1, "state": "Requested", **fields})


def test_run_names_are_deterministic_kubernetes_names() -> None:
    assert triggers.run_name(trigger(), "target", UID) == triggers.run_name(trigger(), "target", UID)
    assert triggers.run_name(trigger(), "target", UID).startswith("target-triggered-")
    assert triggers.run_name(trigger(runId="nightly-1"), "target", UID) == "nightly-1"
    assert names.run_name_of("manual__2026-01-01T00:00:00+00:00").startswith(
        "manual-2026-01-01t00-00-00-00-00-"
    )
    long_dag = "d" * 63
    assert len(names.triggered_run_name(long_dag, UID)) <= names.RUN_NAME_MAX
    assert len(names.run_name_of("R" * 250)) <= names.RUN_NAME_MAX


def existing_run(uid: str | None = None, try_number: int = 1, deleting: bool = False) -> dict[str, Any]:
    labels = (
        {} if uid is None else {names.TRIGGERED_BY_UID_LABEL: uid, names.TRIGGERED_TRY_LABEL: str(try_number)}
    )
    meta: dict[str, Any] = {"name": "r", "labels": labels}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-02T03:00:00Z"
    spec = {"dagRef": {"name": "target"}, "conf": {"old": 1}, "logicalDate": "2025-12-31T00:00:00Z"}
    return {"metadata": meta, "spec": spec}


def test_what_an_existing_run_of_that_name_means() -> None:
    asked = trigger(tryNumber=2)
    assert triggers.on_existing(existing_run(UID, 2), asked, UID) == "ours"  # made in this try
    assert triggers.on_existing(existing_run(UID, 1), asked, UID) == "ours"  # a retry finds its run again
    assert triggers.on_existing(existing_run(UID, 1), trigger(tryNumber=2, reset=True), UID) == "reset"
    assert triggers.on_existing(existing_run(UID, 2), trigger(tryNumber=2, reset=True), UID) == "ours"
    assert triggers.on_existing(existing_run("other"), asked, UID) == "exists"
    assert triggers.on_existing(existing_run(), trigger(reset=True), UID) == "reset"
    assert triggers.on_existing(existing_run(UID, 2, deleting=True), asked, UID) == "deleting"


def test_a_reset_run_is_made_again_with_its_own_spec() -> None:
    reset = triggers.resetting(trigger(reset=True, conf={"new": 2}, run="r"), existing_run())
    assert reset.state == TriggerState.RESETTING
    assert (reset.conf, reset.params) == ({"old": 1}, None)
    assert reset.logical_date == datetime(2025, 12, 31, tzinfo=UTC)


def test_the_dagrun_made_names_the_taskrun_and_try_that_asked() -> None:
    asked = trigger(tryNumber=2, conf={"n": 3}, logicalDate="2026-01-01T00:00:00Z")
    dag = {"metadata": {"name": "target", "uid": "dag-uid"}}
    manifest = triggers.dagrun_to_make(asked, dag, "r", "controller-run-fire", UID, "ns")
    assert manifest["metadata"]["labels"] == {
        **names.labels("target", "r"),
        names.TRIGGERED_BY_LABEL: "controller-run-fire",
        names.TRIGGERED_BY_UID_LABEL: UID,
        names.TRIGGERED_TRY_LABEL: "2",
    }
    assert manifest["spec"] == {
        "dagRef": {"name": "target"},
        "logicalDate": "2026-01-01T00:00:00Z",
        "conf": {"n": 3},
    }
    # Owned by the DAG it runs, so deleting that DAG removes it (issue 10, point 14).
    assert manifest["metadata"]["ownerReferences"] == [
        {"apiVersion": "kdag.dev/v1alpha1", "kind": "DAG", "name": "target", "uid": "dag-uid"}
    ]
    assert RunInfo.from_dagrun(
        {**manifest, "metadata": {**manifest["metadata"], "uid": "u"}}, RUN.dag
    ).run_type == ("operator_triggered")


def test_the_next_attempt_is_answered_only_for_its_own_try_once_acted_on() -> None:
    assert triggers.for_attempt(None, 1) == "ask"
    assert triggers.for_attempt(trigger(), 1) == "wait"  # Requested: the controller has not acted yet
    assert triggers.for_attempt(trigger(state="Resetting"), 1) == "wait"
    assert triggers.for_attempt(trigger(state="Triggered", run="r"), 2) == "ask"  # a retry asks again
    assert triggers.for_attempt(trigger(state="Triggered", run="r"), 1) == "answer"
    assert triggers.for_attempt(trigger(state="Failed", message="m"), 1) == "answer"


def test_answers() -> None:
    done = trigger(state="Triggered", run="r")
    assert triggers.answer(done, {"status": {"phase": "Running"}}) == {"runId": "r", "state": "running"}
    assert triggers.answer(done, {"status": {"phase": "Succeeded"}}) == {"runId": "r", "state": "success"}
    assert triggers.answer(done, {"status": {"phase": "Failed"}}) == {"runId": "r", "state": "failed"}
    assert triggers.answer(done, {}) == {"runId": "r", "state": "queued"}
    assert triggers.answer(done, None) == {"error": "DAGRun 'r' of DAG 'target' no longer exists"}
    assert triggers.answer(trigger(state="Exists", run="r"), None) == {"runId": "r", "exists": True}
    failed = trigger(state="Failed", message="DAG 'target' does not exist in namespace 'ns'")
    assert triggers.answer(failed, None) == {"error": "DAG 'target' does not exist in namespace 'ns'"}


def test_the_answer_reaches_the_pod_as_kdag_triggered_run() -> None:
    task = RUN.dag.resolved_task("hello_task", SETTINGS.runner_image)
    env = {
        e["name"]: e.get("value")
        for e in task_env(RUN, task, 2, answers={"KDAG_TRIGGERED_RUN": {"runId": "r", "state": "running"}})
    }
    assert json.loads(env["KDAG_TRIGGERED_RUN"]) == {"runId": "r", "state": "running"}
    assert "KDAG_TRIGGERED_RUN" not in {e["name"] for e in task_env(RUN, task, 1)}
