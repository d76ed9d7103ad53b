"""Graph ordering, trigger rules and the scheduling decision (Airflow's meaning).

Validation of DAGs (duplicate ids, unknown upstream, cycles, xcomInputs) is `kdag.api.validation`'s: see
test_api.py and test_validation_agreement.py.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kdag import graph
from kdag.api.models import RunPhase, TaskPhase, TaskSpec, TriggerRule
from kdag.graph import Decision, TaskState

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
P = TaskPhase


def task(task_id: str, *upstream: str, **fields: Any) -> TaskSpec:
    return TaskSpec.model_validate({"id": task_id, "command": ["true"], "upstream": list(upstream), **fields})


DIAMOND = [task("a"), task("b", "a"), task("c", "a"), task("d", "b", "c")]
FAN = [task("start"), *(task(f"w{i}", "start") for i in range(4)), task("join", *(f"w{i}" for i in range(4)))]


def states(**phases: TaskPhase) -> dict[str, TaskState]:
    return {tid: TaskState(phase) for tid, phase in phases.items()}


def test_topological_order_keeps_spec_order_among_ready_tasks() -> None:
    assert graph.topological_order(DIAMOND) == ["a", "b", "c", "d"]
    shuffled = [DIAMOND[3], DIAMOND[2], DIAMOND[1], DIAMOND[0]]
    assert graph.topological_order(shuffled) == ["a", "c", "b", "d"]


def test_ancestors_in_topological_order() -> None:
    assert graph.ancestors(DIAMOND, "d") == ["a", "b", "c"]
    assert graph.ancestors(DIAMOND, "b") == ["a"]
    assert graph.ancestors(DIAMOND, "a") == []
    assert graph.ancestors(FAN, "join") == ["start", "w0", "w1", "w2", "w3"]
    with pytest.raises(KeyError, match="'zz'"):
        graph.ancestors(DIAMOND, "zz")


def test_leaves() -> None:
    assert graph.leaves(DIAMOND) == ["d"]
    assert graph.leaves([task("x"), task("y")]) == ["x", "y"]


def test_cycle_is_named_in_order() -> None:
    tasks = [task("a", "c"), task("b", "a"), task("c", "b"), task("d")]
    assert graph.find_cycle(tasks) == ["a", "b", "c", "a"]
    with pytest.raises(graph.GraphError, match="a -> b -> c -> a"):
        graph.topological_order(tasks)
    with pytest.raises(graph.GraphError, match="upstream 'nope' is not a task of this DAG"):
        graph.topological_order([task("a", "nope")])


def test_two_task_cycle_and_acyclic_graphs() -> None:
    assert graph.find_cycle([task("x", "y"), task("y", "x")]) == ["x", "y", "x"]
    assert graph.find_cycle(DIAMOND) is None
    assert graph.find_cycle(FAN) is None


# Trigger rules: (rule, upstream phases, expected outcome); None = wait.
TRIGGER_CASES = [
    (TriggerRule.ALL_SUCCESS, [P.SUCCEEDED, P.SUCCEEDED], P.RUNNING),
    (TriggerRule.ALL_SUCCESS, [P.SUCCEEDED, None], None),
    (TriggerRule.ALL_SUCCESS, [P.SUCCEEDED, P.RUNNING], None),
    (TriggerRule.ALL_SUCCESS, [P.FAILED, None], P.UPSTREAM_FAILED),
    (TriggerRule.ALL_SUCCESS, [P.UPSTREAM_FAILED, P.SUCCEEDED], P.UPSTREAM_FAILED),
    (TriggerRule.ALL_SUCCESS, [P.SKIPPED, P.SUCCEEDED], P.SKIPPED),
    (TriggerRule.ALL_SUCCESS, [P.SKIPPED, P.FAILED], P.UPSTREAM_FAILED),
    (TriggerRule.ALL_SUCCESS, [P.RETRYING], None),
    (TriggerRule.ALL_DONE, [P.FAILED, P.SKIPPED, P.UPSTREAM_FAILED, P.SUCCEEDED], P.RUNNING),
    (TriggerRule.ALL_DONE, [P.FAILED, P.RUNNING], None),
    (TriggerRule.ALL_DONE, [P.FAILED, P.RETRYING], None),
    (TriggerRule.ONE_SUCCESS, [P.SUCCEEDED, P.RUNNING], P.RUNNING),
    (TriggerRule.ONE_SUCCESS, [P.FAILED, P.RUNNING], None),
    (TriggerRule.ONE_SUCCESS, [P.FAILED, P.SKIPPED], P.UPSTREAM_FAILED),
    (TriggerRule.ONE_SUCCESS, [P.SKIPPED, P.SKIPPED], P.SKIPPED),
    (TriggerRule.ONE_FAILED, [P.FAILED, P.RUNNING], P.RUNNING),
    (TriggerRule.ONE_FAILED, [P.UPSTREAM_FAILED, None], P.RUNNING),
    (TriggerRule.ONE_FAILED, [P.SUCCEEDED, P.RUNNING], None),
    (TriggerRule.ONE_FAILED, [P.SUCCEEDED, P.SKIPPED], P.SKIPPED),
    (TriggerRule.NONE_FAILED, [P.SUCCEEDED, P.SKIPPED], P.RUNNING),
    (TriggerRule.NONE_FAILED, [P.SKIPPED, P.SKIPPED], P.RUNNING),
    (TriggerRule.NONE_FAILED, [P.SUCCEEDED, None], None),
    (TriggerRule.NONE_FAILED, [P.FAILED, None], P.UPSTREAM_FAILED),
    (TriggerRule.NONE_FAILED, [P.UPSTREAM_FAILED, P.SUCCEEDED], P.UPSTREAM_FAILED),
]


@pytest.mark.parametrize(("rule", "upstream", "expected"), TRIGGER_CASES)
def test_trigger_rule(
    rule: TriggerRule, upstream: list[TaskPhase | None], expected: TaskPhase | None
) -> None:
    assert graph.evaluate_trigger_rule(rule, upstream) == expected


@pytest.mark.parametrize("rule", list(TriggerRule))
def test_task_without_upstream_always_runs(rule: TriggerRule) -> None:
    assert graph.evaluate_trigger_rule(rule, []) == P.RUNNING


def test_decide_diamond_walks_in_dependency_order() -> None:
    assert graph.decide(DIAMOND, {}, NOW).start == ("a",)
    assert graph.decide(DIAMOND, states(a=P.RUNNING), NOW).start == ()
    decision = graph.decide(DIAMOND, states(a=P.SUCCEEDED), NOW)
    assert decision.start == ("b", "c")
    assert decision.progress == "1/4"
    assert graph.decide(DIAMOND, states(a=P.SUCCEEDED, b=P.SUCCEEDED, c=P.RUNNING), NOW).start == ()
    decision = graph.decide(DIAMOND, states(a=P.SUCCEEDED, b=P.SUCCEEDED, c=P.SUCCEEDED), NOW)
    assert decision.start == ("d",)
    assert decision.phase == RunPhase.RUNNING
    done = graph.decide(DIAMOND, states(a=P.SUCCEEDED, b=P.SUCCEEDED, c=P.SUCCEEDED, d=P.SUCCEEDED), NOW)
    assert done == Decision(
        phase=RunPhase.SUCCEEDED,
        finished=4,
        total=4,
        phases={"a": P.SUCCEEDED, "b": P.SUCCEEDED, "c": P.SUCCEEDED, "d": P.SUCCEEDED},
    )


def test_decide_fan_out_fan_in() -> None:
    assert graph.decide(FAN, states(start=P.SUCCEEDED), NOW).start == ("w0", "w1", "w2", "w3")
    three = states(start=P.SUCCEEDED, w0=P.SUCCEEDED, w1=P.SUCCEEDED, w2=P.SUCCEEDED, w3=P.RUNNING)
    assert graph.decide(FAN, three, NOW).start == ()
    four = {**three, "w3": TaskState(P.SUCCEEDED)}
    decision = graph.decide(FAN, four, NOW)
    assert decision.start == ("join",)
    assert decision.progress == "5/6"


def test_failure_marks_every_downstream_task_upstream_failed_at_once() -> None:
    chain = [task("a"), task("b", "a"), task("c", "b"), task("side")]
    decision = graph.decide(chain, states(a=P.FAILED, side=P.RUNNING), NOW)
    assert decision.upstream_failed == ("b", "c")
    assert decision.start == ()
    assert decision.phase == RunPhase.RUNNING  # side is still running
    final = graph.decide(
        chain, states(a=P.FAILED, side=P.SUCCEEDED, b=P.UPSTREAM_FAILED, c=P.UPSTREAM_FAILED), NOW
    )
    assert final.phase == RunPhase.FAILED
    assert final.progress == "4/4"


def test_failure_in_diamond_waits_for_nothing_and_fails_the_run() -> None:
    decision = graph.decide(DIAMOND, states(a=P.SUCCEEDED, b=P.FAILED, c=P.RUNNING), NOW)
    assert decision.upstream_failed == ("d",)
    assert decision.phase == RunPhase.RUNNING
    decision = graph.decide(
        DIAMOND, states(a=P.SUCCEEDED, b=P.FAILED, c=P.SUCCEEDED, d=P.UPSTREAM_FAILED), NOW
    )
    assert decision.phase == RunPhase.FAILED


def test_skips_cascade_and_the_run_succeeds() -> None:
    tasks = [task("a"), task("cleanup", "a", triggerRule="one_failed"), task("after", "cleanup")]
    decision = graph.decide(tasks, states(a=P.SUCCEEDED), NOW)
    assert decision.skipped == ("cleanup", "after")
    assert decision.phase == RunPhase.SUCCEEDED
    assert decision.phases == {"a": P.SUCCEEDED, "cleanup": P.SKIPPED, "after": P.SKIPPED}


def test_run_phase_follows_leaves_as_airflow_does() -> None:
    # A failed task whose all_done cleanup succeeded: the leaf succeeded, so Airflow's run succeeds.
    tasks = [task("work"), task("cleanup", "work", triggerRule="all_done")]
    decision = graph.decide(tasks, states(work=P.FAILED), NOW)
    assert decision.start == ("cleanup",)
    assert graph.run_phase(tasks, {"work": P.FAILED, "cleanup": P.SUCCEEDED}) == RunPhase.SUCCEEDED
    assert graph.run_phase(tasks, {"work": P.FAILED, "cleanup": P.FAILED}) == RunPhase.FAILED


def test_none_failed_runs_after_skips() -> None:
    tasks = [
        task("a"),
        task("b", "a", triggerRule="one_failed"),
        task("c", "a", "b", triggerRule="none_failed"),
    ]
    decision = graph.decide(tasks, states(a=P.SUCCEEDED), NOW)
    assert decision.skipped == ("b",)
    assert decision.start == ("c",)


def test_retry_becomes_due_after_backoff() -> None:
    tasks = [task("flaky", retries=3, retryDelaySeconds=2)]
    later = NOW + timedelta(seconds=4)
    waiting = {"flaky": TaskState(P.RETRYING, attempts=2, next_attempt_at=later)}
    decision = graph.decide(tasks, waiting, NOW)
    assert decision.retry == ()
    assert decision.wake_at == later
    assert decision.phase == RunPhase.RUNNING
    due = graph.decide(tasks, waiting, later)
    assert due.retry == ("flaky",)
    assert due.wake_at is None


def test_retrying_upstream_holds_downstream() -> None:
    tasks = [task("a", retries=1), task("b", "a")]
    decision = graph.decide(tasks, {"a": TaskState(P.RETRYING, 1, NOW + timedelta(seconds=1))}, NOW)
    assert decision.start == ()
    assert decision.upstream_failed == ()


def test_exponential_backoff_is_capped() -> None:
    flaky = task("flaky", retries=10, retryDelaySeconds=5, maxRetryDelaySeconds=60)
    assert [graph.retry_delay_seconds(flaky, n) for n in range(1, 6)] == [5, 10, 20, 40, 60]
    assert graph.retry_delay_seconds(flaky, 1000) == 60
    default = task("d", retries=2)
    assert [graph.retry_delay_seconds(default, n) for n in (1, 2, 3)] == [1, 2, 4]


def test_next_attempt_at_until_retries_run_out() -> None:
    flaky = task("flaky", retries=2, retryDelaySeconds=3)
    assert graph.next_attempt_at(flaky, 1, NOW) == NOW + timedelta(seconds=3)
    assert graph.next_attempt_at(flaky, 2, NOW) == NOW + timedelta(seconds=6)
    assert graph.next_attempt_at(flaky, 3, NOW) is None
    assert graph.next_attempt_at(task("once"), 1, NOW) is None


def test_decide_ignores_states_of_unknown_tasks() -> None:
    decision = graph.decide([task("a")], states(a=P.SUCCEEDED, gone=P.FAILED), NOW)
    assert decision.phase == RunPhase.SUCCEEDED
    assert decision.phases == {"a": P.SUCCEEDED}


@pytest.mark.parametrize("seed", range(40))
def test_random_dags_run_to_completion_in_dependency_order(seed: int) -> None:
    """Replaying decide on random DAGs: every task ends once, never before its upstream tasks finished."""
    rng = random.Random(seed)
    count = rng.randint(1, 25)
    tasks = [
        task(
            f"t{i}",
            *sorted({f"t{j}" for j in rng.sample(range(i), k=min(i, rng.randint(0, 3)))}),
            triggerRule=rng.choice(list(TriggerRule)).value,
        )
        for i in range(count)
    ]
    fails = {t.id: rng.random() < 0.25 for t in tasks}
    states: dict[str, TaskState] = {}
    for _ in range(count + 1):
        decision = graph.decide(tasks, states, NOW)
        for tid in (*decision.start, *decision.upstream_failed, *decision.skipped):
            assert tid not in states, f"{tid} decided twice"
        for tid in decision.start:
            spec = tasks[int(tid[1:])]
            # Marks of this same decision count: decide cascades them in topological order.
            ups = [decision.phases.get(up) for up in spec.upstream_ids]
            if not ups:
                continue  # a task without upstream tasks always runs
            if spec.effective_trigger_rule == TriggerRule.ONE_SUCCESS:
                assert P.SUCCEEDED in ups, tid
            elif spec.effective_trigger_rule == TriggerRule.ONE_FAILED:
                assert P.FAILED in ups or P.UPSTREAM_FAILED in ups, tid
            else:
                assert all(up is not None and up.finished for up in ups), tid
        for tid in decision.upstream_failed:
            states[tid] = TaskState(P.UPSTREAM_FAILED)
        for tid in decision.skipped:
            states[tid] = TaskState(P.SKIPPED)
        for tid in decision.start:
            states[tid] = TaskState(P.FAILED if fails[tid] else P.SUCCEEDED, attempts=1)
        if decision.phase != RunPhase.RUNNING:
            break
    assert set(states) == {t.id for t in tasks}
    assert decision.progress == f"{count}/{count}"
    leaves_failed = any(states[tid].phase in (P.FAILED, P.UPSTREAM_FAILED) for tid in graph.leaves(tasks))
    assert decision.phase == (RunPhase.FAILED if leaves_failed else RunPhase.SUCCEEDED)
