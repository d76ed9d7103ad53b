"""An ExternalTaskSensor's question on the controller's side, as pure functions: the report's `externalRuns`
(attempts, via `kdag.questions`), the TaskRun's `status.externalRuns` (settle), when the next attempt gets
an answer (questions), the facts of a DAGRun (its phase, its tasks' and mapped instances' states as Airflow
names them) and the answer, `KDAG_EXTERNAL_RUNS` (external_runs, render). No API:
tests/handlers/test_external_task_handler.py runs the handler."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from kdag import external_runs, questions
from kdag.api.models import ExternalRunsQuery, TaskPhase, TaskRunStatus, TriggeredRun, TriggerState
from kdag.attempts import Termination, attempt_result
from kdag.external_runs import RunFacts
from kdag.render import task_env
from kdag.settle import settle
from test_render import RUN, SETTINGS, pod_with, render, terminated

NOW = datetime(2026, 1, 2, 3, 10, tzinfo=UTC)
DATE = "2026-01-01T00:00:00Z"
ASKED = {"dagId": "parent", "taskIds": ["done"], "logicalDates": [DATE]}


def report(**question: Any) -> str:
    body = {**ASKED, **question}
    return json.dumps(
        {"xcomKeys": [], "bytes": 2, "reschedule": "2026-01-02T03:10:31Z", "externalRuns": body}
    )


def query(**fields: Any) -> ExternalRunsQuery:
    return ExternalRunsQuery.model_validate({**ASKED, **fields})


def test_the_report_carries_the_question_on_a_reschedule() -> None:
    result = attempt_result(Termination(5, report()))
    assert result.reschedule_at == datetime(2026, 1, 2, 3, 10, 31, tzinfo=UTC)
    assert result.questions == questions.Questions(external_runs=query())
    assert result.trigger_request is None
    assert result.message == "waiting for DAG 'parent': the next attempt starts at 2026-01-02T03:10:31Z"


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"logicalDates": []}, "externalRuns logicalDates: List should have at least 1 item"),
        ({"dagId": ""}, "externalRuns dagId: String should have at least 1 character"),
        ({"logicalDates": ["soon"]}, "externalRuns logicalDates.0: Input should be a valid datetime"),
    ],
)
def test_a_malformed_question_fails_the_attempt(fields: dict[str, Any], problem: str) -> None:
    result = attempt_result(Termination(5, report(**fields)))
    assert result.finished and not result.succeeded and result.reschedule_at is None
    assert result.message.startswith("invalid termination report: " + problem)


def test_settle_records_each_pokes_question() -> None:
    task = RUN.dag.resolved_task("hello_task", SETTINGS.runner_image)
    older = query(taskIds=None, taskGroupId="g")
    current = TaskRunStatus(
        phase=TaskPhase.RUNNING, attempts=2, reschedules=1, start_time=NOW, external_runs=older
    )
    pod = pod_with(render("hello_task", 2), "Failed", [terminated("task", 5, report())])
    outcome = settle(current, {2: pod}, task, NOW, run_name=RUN.name)
    assert outcome.phase == TaskPhase.UP_FOR_RESCHEDULE and outcome.patch is not None
    # Every field is written (None included), so the patch replaces the older question whole.
    assert outcome.patch.to_patch()["externalRuns"] == {
        "dagId": "parent",
        "taskIds": ["done"],
        "taskGroupId": None,
        "logicalDates": [DATE],
    }
    assert questions.Asked.of(current, outcome.patch).external_runs == query()


def test_every_attempt_after_a_question_is_answered() -> None:
    asked = questions.Asked(external_runs=query())
    assert questions.for_attempt(None, 1) == "ask"
    assert questions.for_attempt(asked, 1) == questions.for_attempt(asked, 3) == "answer"
    assert questions.needs(asked, 1) == (None, True)
    waiting = TriggeredRun(dag_id="t", try_number=1, state=TriggerState.REQUESTED)
    assert questions.for_attempt(questions.Asked(trigger=waiting), 1) == "wait"
    made = waiting.model_copy(update={"state": TriggerState.TRIGGERED, "run": "r"})
    assert questions.needs(questions.Asked(trigger=made), 1) == ("r", False)
    assert questions.needs(questions.Asked(trigger=made), 2) == (None, False)  # a new try asks again


def dagrun(name: str, dag_name: str = "parent", date: str = DATE, **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "ns", "creationTimestamp": status.pop("created", DATE)},
        "spec": {"dagRef": {"name": dag_name}, "logicalDate": date},
        "status": status,
    }


SNAPSHOT = {"tasks": [{"id": "done"}, {"id": "g.a"}, {"id": "g.m"}, {"id": "later"}]}
VERSION = "parent-dag-0123456789abcdef"
"""The DAGVersion the runs follow: its task ids are SNAPSHOT's."""
VERSION_TASKS = {VERSION: [str(t["id"]) for t in SNAPSHOT["tasks"]]}


def test_the_facts_of_a_run_are_airflows_states_per_instance() -> None:
    run = dagrun(
        "parent-1",
        phase="Running",
        dagVersion=VERSION,
        tasks={"done": "Succeeded", "g.a": "Retrying", "g.m": "Running"},
        mapped={"g.m": {"length": 4, "phases": {"Succeeded": 2, "Failed": 1}}},
    )
    facts = external_runs.run_facts(run, VERSION_TASKS[VERSION])
    assert facts == RunFacts(
        run_id="parent-1",
        logical_date=datetime(2026, 1, 1, tzinfo=UTC),
        state="running",
        tasks={
            "done": {"success": 1},
            "g.a": {"up_for_retry": 1},
            "g.m": {"success": 2, "failed": 1, "none": 1},
            "later": {"none": 1},  # not decided yet: Airflow's None
        },
        created=DATE,
    )
    assert external_runs.run_facts(dagrun("new")) == RunFacts(
        "new", datetime(2026, 1, 1, tzinfo=UTC), "queued", {}, DATE
    )


DAG = {"metadata": {"name": "parent-dag"}, "spec": {"dagId": "parent", "tasks": SNAPSHOT["tasks"]}}


def test_the_answer_names_what_exists_and_the_newest_run_at_each_date() -> None:
    runs = [
        dagrun("old", "parent-dag", phase="Failed", dagVersion=VERSION, tasks={"done": "Failed"}),
        dagrun("new", "parent-dag", created="2026-01-03T00:00:00Z", phase="Running", dagVersion=VERSION),
        dagrun("elsewhen", "parent-dag", date="2025-01-01T00:00:00Z", phase="Succeeded"),
        dagrun("other-dag", "child", phase="Succeeded"),
    ]
    # Only the runs of the DAG asked about, at the dates asked, need their DAG versions read.
    assert [r["metadata"]["name"] for r in external_runs.asked_runs(query(), [DAG], runs)] == ["old", "new"]
    answer = external_runs.cluster_answer(query(taskIds=["done", "gone"]), [DAG], runs, "ns", VERSION_TASKS)
    assert answer == {
        "asked": {"dagId": "parent", "taskIds": ["done", "gone"], "logicalDates": [DATE]},
        "dagExists": True,
        "missingTasks": ["gone"],
        "runs": [{"runId": "new", "logicalDate": DATE, "state": "running", "tasks": {"done": {"none": 1}}}],
    }
    group = external_runs.cluster_answer(
        query(taskIds=None, taskGroupId="g"), [DAG], runs[:1], "ns", VERSION_TASKS
    )
    assert (group["groupExists"], group["runs"][0]["tasks"]) == (
        True,
        {"g.a": {"none": 1}, "g.m": {"none": 1}},
    )
    # A run whose DAG version is not known reports only the tasks its status names.
    unknown = external_runs.cluster_answer(query(taskIds=None, taskGroupId="g"), [DAG], runs[:1], "ns")
    assert unknown["runs"][0]["tasks"] == {}
    whole = external_runs.cluster_answer(query(taskIds=None), [DAG], runs[:1], "ns", VERSION_TASKS)
    assert whole["runs"] == [{"runId": "old", "logicalDate": DATE, "state": "failed", "tasks": {}}]


def test_no_dag_or_an_ambiguous_dag_id() -> None:
    assert external_runs.cluster_answer(query(), [], [], "ns") == {
        "asked": ASKED,
        "dagExists": False,
        "runs": [],
    }
    twin = {"metadata": {"name": "parent"}, "spec": {"tasks": []}}
    answer = external_runs.cluster_answer(query(), [DAG, twin], [], "ns")
    assert answer["error"] == (
        "DAG 'parent' is ambiguous in namespace 'ns': the DAG objects parent, parent-dag share it"
    )


def test_a_run_being_deleted_is_not_seen() -> None:
    going = dagrun("going", "parent-dag", phase="Succeeded")
    going["metadata"]["deletionTimestamp"] = DATE
    assert external_runs.cluster_answer(query(), [DAG], [going], "ns")["runs"] == []


def test_the_answers_reach_the_pod() -> None:
    asked = questions.Asked(external_runs=query())
    answers = questions.answers(asked, 2, namespace="ns", dags=[DAG])
    task = RUN.dag.resolved_task("hello_task", SETTINGS.runner_image)
    env = {e["name"]: e.get("value") for e in task_env(RUN, task, 2, answers=answers)}
    assert json.loads(env["KDAG_EXTERNAL_RUNS"]) == {
        "asked": ASKED,
        "dagExists": True,
        "missingTasks": [],
        "runs": [],
    }
    assert "KDAG_TRIGGERED_RUN" not in env
