"""Mapped task groups in the controller's pure parts (docs/design.md, "Mapped tasks"): `graph.decide` expands
every task of the group with the group's length, instance i of a task waits only for instance i of the
group's tasks upstream of it (so it may start while other instances of those run, and a failed instance
marks only its own index downstream), a literal group expands when the run starts and an XCom group once its
XComs are in, tasks after the group count every instance; the validator's rules on `map.group`; what
`kdag compile` writes for the tasks of a mapped group; the handler-facing marks of single instances."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kdag import compile as compiler
from kdag import graph, mapping
from kdag.api.models import RunPhase, TaskPhase, TaskSpec
from kdag.api.validation import check_dag_spec
from kdag.task_state import TaskState

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
P = TaskPhase


def task(task_id: str, *upstream: str, **fields: Any) -> TaskSpec:
    return TaskSpec.model_validate({"id": task_id, "command": ["true"], "upstream": list(upstream), **fields})


def grouped(task_id: str, length: dict[str, Any], *upstream: str, **fields: Any) -> TaskSpec:
    """A task of the mapped task group `g`."""
    return task(task_id, *upstream, map={"length": length, "maxLength": 1024, "group": "g"}, **fields)


def ok(**lengths: int) -> TaskState:
    return TaskState(P.SUCCEEDED, 1, xcom_lengths=lengths, xcom_keys=frozenset(lengths))


def done(*phases: TaskPhase) -> dict[int, TaskState]:
    """Instances 0.. in these phases (Succeeded ones pushed a return value)."""
    return {
        i: TaskState(p, 1, xcom_keys=frozenset({"return_value"}) if p == P.SUCCEEDED else frozenset())
        for i, p in enumerate(phases)
    }


LITERAL = {"literal": 3}
# g.a -> g.b inside the group, reduce after it.
LITERAL_DAG = [grouped("g.a", LITERAL), grouped("g.b", LITERAL, "g.a"), task("reduce", "g.b")]
XCOM = {"xcom": {"task": "make", "key": "return_value"}}
XCOM_DAG = [task("make"), grouped("g.a", XCOM, "make"), grouped("g.b", XCOM, "g.a"), task("reduce", "g.b")]


# -- expansion ------------------------------------------------------------------------------------------


def test_a_literal_group_expands_at_the_start_and_its_roots_run_at_once() -> None:
    decision = graph.decide(LITERAL_DAG, {}, NOW)
    assert decision.start_instances == (("g.a", 0), ("g.a", 1), ("g.a", 2))
    # g.b expanded too: each instance waits for its own g.a instance.
    assert decision.lengths == {"g.a": 3, "g.b": 3}
    assert decision.instance_phases["g.b"] == {P.PENDING: 3}
    assert decision.progress == "0/7"


def test_an_instance_starts_when_its_own_upstream_instance_succeeded() -> None:
    instances = {"g.a": {0: TaskState(P.RUNNING, 1), **{1: ok(), 2: TaskState(P.RUNNING, 1)}}}
    decision = graph.decide(LITERAL_DAG, {}, NOW, instances=instances)
    # g.b[1] starts while g.a[0] and g.a[2] still run.
    assert decision.start_instances == (("g.b", 1),)
    assert decision.start == ()


def test_a_failed_instance_marks_only_its_own_index_downstream_in_the_group() -> None:
    instances = {"g.a": done(P.SUCCEEDED, P.FAILED, P.SUCCEEDED)}
    decision = graph.decide(LITERAL_DAG, {}, NOW, instances=instances)
    assert decision.upstream_failed_instances == (("g.b", 1),)
    assert decision.start_instances == (("g.b", 0), ("g.b", 2))
    assert "g.b" not in decision.messages and decision.phases["g.b"] == P.RUNNING
    # The task after the group counts every instance: g.b[1] is upstream-failed, so reduce is at once.
    assert decision.upstream_failed == ("reduce",)


def test_marks_cascade_instance_by_instance_through_the_group_in_one_decision() -> None:
    tasks = [*LITERAL_DAG[:2], grouped("g.c", LITERAL, "g.b"), task("after", "g.c", triggerRule="all_done")]
    decision = graph.decide(tasks, {}, NOW, instances={"g.a": done(P.FAILED, P.SUCCEEDED, P.SKIPPED)})
    assert decision.upstream_failed_instances == (("g.b", 0), ("g.c", 0))
    assert decision.skipped_instances == (("g.b", 2), ("g.c", 2))
    assert decision.start_instances == (("g.b", 1),)
    assert decision.instance_phases["g.c"] == {P.UPSTREAM_FAILED: 1, P.PENDING: 1, P.SKIPPED: 1}
    assert decision.finished == 3 + 2 + 2  # g.a's three, two marks each of g.b and g.c


def test_a_task_outside_the_group_upstream_of_it_counts_for_every_instance() -> None:
    tasks = [task("start"), grouped("g.a", LITERAL, "start"), grouped("g.b", LITERAL, "g.a")]
    waiting = graph.decide(tasks, {"start": TaskState(P.RUNNING, 1)}, NOW)
    assert waiting.start_instances == () and waiting.lengths == {"g.a": 3, "g.b": 3}
    failed = graph.decide(tasks, {"start": TaskState(P.FAILED, 1)}, NOW)
    # A literal group's instances exist from the start (as in Airflow): each one is marked.
    assert failed.upstream_failed_instances == tuple((t, i) for t in ("g.a", "g.b") for i in range(3))
    assert failed.upstream_failed == ()
    assert failed.phase == RunPhase.FAILED


def test_an_xcom_group_waits_for_its_xcoms_then_expands_every_task() -> None:
    waiting = graph.decide(XCOM_DAG, {"make": TaskState(P.RUNNING, 1)}, NOW)
    assert waiting.lengths == {} and waiting.start_instances == ()
    decision = graph.decide(XCOM_DAG, {"make": ok(return_value=2)}, NOW)
    assert decision.start_instances == (("g.a", 0), ("g.a", 1))
    assert decision.lengths == {"g.a": 2, "g.b": 2}
    later = graph.decide(
        XCOM_DAG, {"make": ok(return_value=2)}, NOW, instances={"g.a": done(P.SUCCEEDED, P.RUNNING)}
    )
    assert later.start_instances == (("g.b", 0),)


def test_an_xcom_group_after_a_failure_or_over_nothing_is_marked_as_a_whole() -> None:
    failed = graph.decide(XCOM_DAG, {"make": TaskState(P.FAILED, 1)}, NOW)
    assert failed.upstream_failed == ("g.a", "g.b", "reduce")
    assert failed.upstream_failed_instances == ()
    empty = graph.decide(XCOM_DAG, {"make": ok(return_value=0)}, NOW)
    assert empty.skipped == ("g.a", "g.b", "reduce")
    # g.b follows its trigger rule over g.a, skipped as a whole.
    assert empty.messages == {"g.a": "mapped over 0 elements"}
    assert empty.phase == RunPhase.SUCCEEDED
    unknown = graph.decide(XCOM_DAG, {"make": ok()}, NOW)  # it pushed no list
    assert unknown.upstream_failed == ("g.a", "g.b", "reduce")
    assert unknown.messages["g.a"].startswith("cannot expand: no list or dict to map over")


def test_a_literal_group_over_max_map_length_fails_as_a_whole() -> None:
    tasks = [grouped("g.a", {"literal": 2000}), grouped("g.b", {"literal": 2000}, "g.a")]
    decision = graph.decide(tasks, {}, NOW)
    assert decision.failed == ("g.a", "g.b")
    assert decision.messages["g.b"].startswith("cannot expand into 2000 instances")


def test_a_skip_request_skips_every_instance_of_a_literal_group_and_an_xcom_group_whole() -> None:
    tasks = [
        task("branch"),
        task("make", "branch"),
        grouped("g.a", LITERAL, "branch"),
        grouped("g.b", LITERAL, "g.a"),
        task("h.a", "branch", "make", map={"length": XCOM, "group": "h"}),
    ]
    states = {"branch": TaskState(P.SUCCEEDED, 1, skip_tasks=frozenset({"g.a", "h.a"}))}
    decision = graph.decide(tasks, states, NOW)
    assert decision.skipped_instances == tuple((t, i) for t in ("g.a", "g.b") for i in range(3))
    assert decision.skipped_by == {
        **{mapping.instance_key("g.a", i): "branch" for i in range(3)},
        "h.a": "branch",
    }
    assert decision.skipped == ("h.a",)
    assert decision.start == ("make",)


def test_instances_are_retried_one_by_one() -> None:
    retrying = TaskState(P.RETRYING, 1, next_attempt_at=NOW)
    decision = graph.decide(LITERAL_DAG, {}, NOW, instances={"g.a": {0: ok(), 1: retrying, 2: ok()}})
    assert decision.retry_instances == (("g.a", 1),)
    assert decision.start_instances == (("g.b", 0), ("g.b", 2))


# -- the helpers decide uses --------------------------------------------------------------------------


def test_upstream_view_per_instance_and_before_expansion() -> None:
    by_id = {t.id: t for t in [task("out"), *LITERAL_DAG]}
    b = by_id["g.b"]
    expanded = {"g.a": [P.SUCCEEDED, None, P.FAILED]}
    phases = {"out": P.SUCCEEDED}
    assert mapping.upstream_view(b, 2, by_id, phases, expanded)("g.a") == [P.FAILED]
    assert mapping.upstream_view(b, 7, by_id, phases, expanded)("g.a") == [None]
    assert mapping.upstream_view(b, None, by_id, phases, expanded)("g.a") == []
    assert mapping.upstream_view(b, 0, by_id, phases, expanded)("out") == [P.SUCCEEDED]
    # A task not of the group counts every instance of the group's tasks (the reduce).
    reduce = by_id["reduce"]
    assert mapping.upstream_view(reduce, None, by_id, phases, expanded)("g.a") == expanded["g.a"]
    assert mapping.length_pending(XCOM_DAG[1], {"make": P.RUNNING})
    assert not mapping.length_pending(XCOM_DAG[1], {"make": P.SUCCEEDED})
    assert mapping.expands_at_once(LITERAL_DAG[0]) and not mapping.expands_at_once(XCOM_DAG[1])


# -- the validator ------------------------------------------------------------------------------------------


def spec_of(*tasks: TaskSpec) -> dict[str, Any]:
    return {"tasks": [t.to_kube() for t in tasks]}


def test_the_validator_takes_a_group_over_an_ancestor_and_refuses_differing_lengths() -> None:
    model, problems = check_dag_spec(spec_of(*XCOM_DAG))
    assert problems == [] and model is not None
    assert model.task("g.b").map is not None and model.task("g.b").map.group == "g"  # type: ignore[union-attr]
    other = grouped("g.b", {"literal": 2}, "g.a")
    _, problems = check_dag_spec(spec_of(*XCOM_DAG[:2], other))
    assert [(p.task_id, p.message) for p in problems] == [
        (
            "g.b",
            "the tasks of mapped task group 'g' need the same map.length and map.maxLength"
            " (task 'g.a' has others)",
        )
    ]
    _, problems = check_dag_spec(spec_of(task("make"), grouped("g.a", XCOM)))
    assert [p.message for p in problems] == [
        "xcom task 'make' must be an upstream ancestor of the task, outside its mapped task group 'g'"
    ]


# -- compile --------------------------------------------------------------------------------------------

GROUP_DAG = """
from datetime import datetime

from airflow.sdk import DAG, task, task_group

with DAG("groups", start_date=datetime(2026, 1, 1), schedule=None):

    @task
    def make():
        return [1, 2]

    @task_group
    def op(num):
        @task
        def add_1(num):
            return num + 1

        @task
        def mul_2(num):
            return num * 2

        return mul_2(add_1(num))

    @task
    def total(values):
        return sum(values)

    total(op.expand(num=make()))
"""


def test_compile_writes_the_groups_length_on_each_of_its_tasks(tmp_path: Path) -> None:
    path = tmp_path / "groups.py"
    path.write_text(GROUP_DAG)
    spec = compiler.load(path).spec
    assert [t.id for t in spec.tasks] == ["make", "op.add_1", "op.mul_2", "total"]
    for task_id in ("op.add_1", "op.mul_2"):
        task_map = spec.task(task_id).map
        assert task_map is not None
        assert task_map.to_kube() == {
            "length": {"xcom": {"task": "make", "key": "return_value"}},
            "maxLength": 1024,
            "group": "op",
        }
    # The task the group maps over runs before its root; the rest follow the group's own edges.
    assert spec.task("op.add_1").upstream_ids == ["make"]
    assert spec.task("op.mul_2").upstream_ids == ["op.add_1"]
    assert spec.task("total").upstream_ids == ["op.mul_2"] and spec.task("total").map is None
