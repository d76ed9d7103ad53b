"""Graph ordering, trigger rules and the scheduling decision (Airflow's meaning).

Validation of DAGs (duplicate ids, unknown upstream, cycles, xcomInputs) is `kdag.api.validation`'s: see
test_api.py and test_validation_agreement.py.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kdag import graph, retries, run_phase, topology, trigger_rules
from kdag.api.models import RunPhase, TaskDefaults, TaskPhase, TaskSpec, TriggerRule, resolve_task
from kdag.graph import Decision
from kdag.task_state import TaskState

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
P = TaskPhase


def task(task_id: str, *upstream: str, **fields: Any) -> TaskSpec:
    return TaskSpec.model_validate({"id": task_id, "command": ["true"], "upstream": list(upstream), **fields})


DIAMOND = [task("a"), task("b", "a"), task("c", "a"), task("d", "b", "c")]
FAN = [task("start"), *(task(f"w{i}", "start") for i in range(4)), task("join", *(f"w{i}" for i in range(4)))]


def states(**phases: TaskPhase) -> dict[str, TaskState]:
    return {tid: TaskState(phase) for tid, phase in phases.items()}


def test_topological_order_keeps_spec_order_among_ready_tasks() -> None:
    assert topology.topological_order(DIAMOND) == ["a", "b", "c", "d"]
    shuffled = [DIAMOND[3], DIAMOND[2], DIAMOND[1], DIAMOND[0]]
    assert topology.topological_order(shuffled) == ["a", "c", "b", "d"]


def test_ancestors_in_topological_order() -> None:
    assert topology.ancestors(DIAMOND, "d") == ["a", "b", "c"]
    assert topology.ancestors(DIAMOND, "b") == ["a"]
    assert topology.ancestors(DIAMOND, "a") == []
    assert topology.ancestors(FAN, "join") == ["start", "w0", "w1", "w2", "w3"]
    with pytest.raises(KeyError, match="'zz'"):
        topology.ancestors(DIAMOND, "zz")


def test_leaves() -> None:
    assert topology.leaves(DIAMOND) == ["d"]
    assert topology.leaves([task("x"), task("y")]) == ["x", "y"]
    assert run_phase.run_leaves(DIAMOND) == ["d"]


def test_cycle_is_named_in_order() -> None:
    tasks = [task("a", "c"), task("b", "a"), task("c", "b"), task("d")]
    assert topology.find_cycle(tasks) == ["a", "b", "c", "a"]
    with pytest.raises(topology.GraphError, match="a -> b -> c -> a"):
        topology.topological_order(tasks)
    with pytest.raises(topology.GraphError, match="upstream 'nope' is not a task of this DAG"):
        topology.topological_order([task("a", "nope")])


def test_two_task_cycle_and_acyclic_graphs() -> None:
    assert topology.find_cycle([task("x", "y"), task("y", "x")]) == ["x", "y", "x"]
    assert topology.find_cycle(DIAMOND) is None
    assert topology.find_cycle(FAN) is None


# Trigger rules: (rule, upstream phases, expected outcome); None = wait (an upstream task not started, or
# Running/Retrying, is not done). Expected outcomes are Airflow 3's TriggerRuleDep (flag_upstream_failed):
# a rule that can no longer hold marks the task at once, UpstreamFailed or Skipped as Airflow marks it.
S, F, K, U, N = P.SUCCEEDED, P.FAILED, P.SKIPPED, P.UPSTREAM_FAILED, None
R = P.RUNNING
TR = TriggerRule
TRIGGER_CASES: list[tuple[TriggerRule, list[TaskPhase | None], TaskPhase | None]] = [
    (TR.ALL_SUCCESS, [S, S], R),
    (TR.ALL_SUCCESS, [S, N], None),
    (TR.ALL_SUCCESS, [S, P.RUNNING], None),
    (TR.ALL_SUCCESS, [F, N], U),
    (TR.ALL_SUCCESS, [U, S], U),
    (TR.ALL_SUCCESS, [K, S], K),
    (TR.ALL_SUCCESS, [K, N], K),
    (TR.ALL_SUCCESS, [K, F], U),
    (TR.ALL_SUCCESS, [P.RETRYING], None),
    (TR.ALL_FAILED, [F, F], R),
    (TR.ALL_FAILED, [F, U], R),
    (TR.ALL_FAILED, [U, U], R),
    (TR.ALL_FAILED, [F, N], None),
    (TR.ALL_FAILED, [F, S], K),
    (TR.ALL_FAILED, [S, N], K),
    (TR.ALL_FAILED, [K, N], K),
    (TR.ALL_DONE, [F, K, U, S], R),
    (TR.ALL_DONE, [K, K], R),
    (TR.ALL_DONE, [F, P.RUNNING], None),
    (TR.ALL_DONE, [F, P.RETRYING], None),
    (TR.ALL_DONE_MIN_ONE_SUCCESS, [S, F], R),
    (TR.ALL_DONE_MIN_ONE_SUCCESS, [S, U], R),
    (TR.ALL_DONE_MIN_ONE_SUCCESS, [S, S], R),
    (TR.ALL_DONE_MIN_ONE_SUCCESS, [S, N], None),
    (TR.ALL_DONE_MIN_ONE_SUCCESS, [F, N], None),
    (TR.ALL_DONE_MIN_ONE_SUCCESS, [F, U], U),
    (TR.ALL_DONE_MIN_ONE_SUCCESS, [F, F], U),
    (TR.ALL_DONE_MIN_ONE_SUCCESS, [S, K], K),  # Airflow: a skipped upstream is not "done" for this rule
    (TR.ALL_DONE_MIN_ONE_SUCCESS, [K, N], K),
    (TR.ALL_DONE_SETUP_SUCCESS, [F, F], R),  # no setup upstream: as all_done
    (TR.ALL_DONE_SETUP_SUCCESS, [K, K], R),
    (TR.ALL_DONE_SETUP_SUCCESS, [S, N], None),
    (TR.ALL_SKIPPED, [K, K], R),
    (TR.ALL_SKIPPED, [K, N], None),
    (TR.ALL_SKIPPED, [K, S], K),
    (TR.ALL_SKIPPED, [F, N], K),
    (TR.ALL_SKIPPED, [U, K], K),
    (TR.ONE_SUCCESS, [S, P.RUNNING], R),
    (TR.ONE_SUCCESS, [F, P.RUNNING], None),
    (TR.ONE_SUCCESS, [F, K], U),
    (TR.ONE_SUCCESS, [U, U], U),
    (TR.ONE_SUCCESS, [K, K], K),
    (TR.ONE_FAILED, [F, P.RUNNING], R),
    (TR.ONE_FAILED, [U, N], R),
    (TR.ONE_FAILED, [S, P.RUNNING], None),
    (TR.ONE_FAILED, [S, K], K),
    (TR.ONE_DONE, [S, N], R),
    (TR.ONE_DONE, [F, N], R),
    (TR.ONE_DONE, [U, S], R),
    (TR.ONE_DONE, [U, N], None),  # upstream_failed is not "done" for one_done
    (TR.ONE_DONE, [K, N], None),
    (TR.ONE_DONE, [K, U], K),
    (TR.ONE_DONE, [K, K], K),
    (TR.NONE_FAILED, [S, K], R),
    (TR.NONE_FAILED, [K, K], R),
    (TR.NONE_FAILED, [S, N], None),
    (TR.NONE_FAILED, [F, N], U),
    (TR.NONE_FAILED, [U, S], U),
    (TR.NONE_FAILED_MIN_ONE_SUCCESS, [S, K], R),
    (TR.NONE_FAILED_MIN_ONE_SUCCESS, [S, S], R),
    (TR.NONE_FAILED_MIN_ONE_SUCCESS, [K, K], K),
    (TR.NONE_FAILED_MIN_ONE_SUCCESS, [K, N], None),
    (TR.NONE_FAILED_MIN_ONE_SUCCESS, [S, N], None),
    (TR.NONE_FAILED_MIN_ONE_SUCCESS, [F, N], U),
    (TR.NONE_FAILED_MIN_ONE_SUCCESS, [U, K], U),
    (TR.NONE_SKIPPED, [S, F], R),
    (TR.NONE_SKIPPED, [S, U], R),
    (TR.NONE_SKIPPED, [F, N], None),
    (TR.NONE_SKIPPED, [K, N], K),
    (TR.NONE_SKIPPED, [S, K], K),
    (TR.ALWAYS, [N, N], R),
    (TR.ALWAYS, [F, U], R),
    (TR.ALWAYS, [K], R),
]


@pytest.mark.parametrize(("rule", "upstream", "expected"), TRIGGER_CASES)
def test_trigger_rule(
    rule: TriggerRule, upstream: list[TaskPhase | None], expected: TaskPhase | None
) -> None:
    assert trigger_rules.evaluate_trigger_rule(rule, upstream) == expected


def test_every_rule_has_cases() -> None:
    assert {rule for rule, _, _ in TRIGGER_CASES} == set(TriggerRule)


# all_done_setup_success: (direct setup upstream phases, other upstream phases, expected).
SETUP_SUCCESS_CASES: list[tuple[list[TaskPhase | None], list[TaskPhase | None], TaskPhase | None]] = [
    ([S], [F], R),  # the setup ran: the teardown runs even though work failed
    ([S], [U], R),
    ([S], [K], R),
    ([S], [N], None),  # waits for all upstream tasks
    ([F], [S], U),
    ([U], [U], U),
    ([K], [K], K),  # every setup skipped: skipped
    ([K, S], [F], R),  # at least one setup succeeded
    ([K, F], [S], U),
    ([N], [S], None),
]


@pytest.mark.parametrize(("setups", "others", "expected"), SETUP_SUCCESS_CASES)
def test_all_done_setup_success(
    setups: list[TaskPhase | None], others: list[TaskPhase | None], expected: TaskPhase | None
) -> None:
    outcome = trigger_rules.evaluate_trigger_rule(TR.ALL_DONE_SETUP_SUCCESS, [*setups, *others], setups)
    assert outcome == expected


def airflow_trigger_rule(
    rule: TriggerRule, upstream: Sequence[TaskPhase | None], setups: Sequence[TaskPhase | None]
) -> TaskPhase | None:
    """TriggerRuleDep's two steps, as Airflow 3 writes them: a mark from counts, then the passing check."""
    if not upstream or rule == TR.ALWAYS:
        return R
    n = len(upstream)
    success, skipped, failed, upstream_failed = (sum(p == q for p in upstream) for q in (S, K, F, U))
    done = success + skipped + failed + upstream_failed
    upstream_done = done >= n
    upstream_setup = len(setups)
    success_setup = sum(p == S for p in setups)
    skipped_setup = sum(p == K for p in setups)
    mark: TaskPhase | None = None
    if rule == TR.ALL_SUCCESS:
        mark = U if upstream_failed or failed else K if skipped else None
    elif rule == TR.ALL_FAILED:
        mark = K if success or skipped else None
    elif rule == TR.ONE_SUCCESS:
        if upstream_done and done == skipped:
            mark = K
        elif upstream_done and success <= 0:
            mark = U
    elif rule == TR.ONE_FAILED:
        mark = K if upstream_done and not (failed or upstream_failed) else None
    elif rule == TR.ONE_DONE:
        mark = K if upstream_done and not (failed or success) else None
    elif rule == TR.NONE_FAILED:
        mark = U if upstream_failed or failed else None
    elif rule == TR.NONE_FAILED_MIN_ONE_SUCCESS:
        if upstream_failed or failed:
            mark = U
        elif skipped == n:
            mark = K
        elif upstream_done and success == 0:
            mark = U
    elif rule == TR.NONE_SKIPPED:
        mark = K if skipped else None
    elif rule == TR.ALL_SKIPPED:
        mark = K if success or failed or upstream_failed else None
    elif rule == TR.ALL_DONE_MIN_ONE_SUCCESS:
        if skipped > 0:
            mark = K
        elif success + failed + upstream_failed >= n - skipped and success == 0:
            mark = U
    elif rule == TR.ALL_DONE_SETUP_SUCCESS:
        if upstream_done and upstream_setup and skipped_setup >= upstream_setup:
            mark = K
        elif upstream_done and upstream_setup and success_setup == 0:
            mark = U
    if mark is not None:
        return mark
    passing = {
        TR.ONE_SUCCESS: success > 0,
        TR.ONE_FAILED: failed > 0 or upstream_failed > 0,
        TR.ONE_DONE: success + failed > 0,
        TR.ALL_SUCCESS: n - success <= 0,
        TR.ALL_FAILED: n - failed - upstream_failed <= 0,
        TR.ALL_DONE: upstream_done,
        TR.NONE_FAILED: n - success - skipped <= 0,
        TR.NONE_FAILED_MIN_ONE_SUCCESS: n - success - skipped <= 0 and success > 0,
        TR.NONE_SKIPPED: upstream_done and skipped == 0,
        TR.ALL_SKIPPED: n - skipped <= 0,
        TR.ALL_DONE_SETUP_SUCCESS: upstream_done and not (upstream_setup and not success_setup),
        TR.ALL_DONE_MIN_ONE_SUCCESS: skipped == 0 and success + failed + upstream_failed >= n and success > 0,
    }[rule]
    return R if passing else None


UPSTREAM_STATES: list[TaskPhase | None] = [S, F, K, U, N, P.RUNNING]


@pytest.mark.parametrize("rule", list(TriggerRule))
def test_every_rule_agrees_with_airflows_two_step_check_on_every_upstream_mix(rule: TriggerRule) -> None:
    for size in range(1, 4):
        for upstream in itertools.combinations_with_replacement(UPSTREAM_STATES, size):
            for setup_count in range(size + 1):  # the first `setup_count` upstream tasks are setups
                setups = upstream[:setup_count]
                expected = airflow_trigger_rule(rule, upstream, setups)
                outcome = trigger_rules.evaluate_trigger_rule(rule, upstream, setups)
                assert outcome == expected, (upstream, setups)


@pytest.mark.parametrize("rule", list(TriggerRule))
def test_task_without_upstream_always_runs(rule: TriggerRule) -> None:
    assert trigger_rules.evaluate_trigger_rule(rule, []) == P.RUNNING


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
    assert run_phase.run_phase(tasks, {"work": P.FAILED, "cleanup": P.SUCCEEDED}) == RunPhase.SUCCEEDED
    assert run_phase.run_phase(tasks, {"work": P.FAILED, "cleanup": P.FAILED}) == RunPhase.FAILED


def test_none_failed_runs_after_skips() -> None:
    tasks = [
        task("a"),
        task("b", "a", triggerRule="one_failed"),
        task("c", "a", "b", triggerRule="none_failed"),
    ]
    decision = graph.decide(tasks, states(a=P.SUCCEEDED), NOW)
    assert decision.skipped == ("b",)
    assert decision.start == ("c",)


def test_dag_default_trigger_rule_applies_to_tasks_that_set_none() -> None:
    tasks = [task("a"), task("b", "a"), task("c", "a", triggerRule="all_success")]
    decision = graph.decide(tasks, states(a=P.FAILED), NOW, defaults=TaskDefaults(triggerRule="all_done"))
    assert decision.start == ("b",)
    assert decision.upstream_failed == ("c",)
    assert graph.decide(tasks, states(a=P.FAILED), NOW).upstream_failed == ("b", "c")


# --- the skip protocol (a branch's or short-circuit's `skipTasks`) ------------------------------------------


BRANCHED = [
    task("branch"),
    task("left", "branch"),
    task("right", "branch"),
    task("join", "left", "right", triggerRule="none_failed_min_one_success"),
    task("strict", "left", "right"),
]


def succeeded(*skip: str) -> TaskState:
    return TaskState(P.SUCCEEDED, attempts=1, skip_tasks=frozenset(skip))


def test_a_branch_skips_the_tasks_it_did_not_follow_and_trigger_rules_cascade() -> None:
    decision = graph.decide(BRANCHED, {"branch": succeeded("right")}, NOW)
    assert decision.start == ("left",)
    assert decision.skipped == ("right", "strict")  # strict (all_success) is skipped by its rule at once
    assert decision.skipped_by == {"right": "branch"}
    assert decision.phases["right"] == P.SKIPPED
    after = {"branch": succeeded("right"), "right": TaskState(P.SKIPPED), "strict": TaskState(P.SKIPPED)}
    later = graph.decide(BRANCHED, {**after, "left": TaskState(P.SUCCEEDED, 1)}, NOW)
    assert later.start == ("join",)
    assert later.skipped == ()
    done = {**after, "left": TaskState(P.SUCCEEDED, 1), "join": TaskState(P.SUCCEEDED, 1)}
    assert graph.decide(BRANCHED, done, NOW).phase == RunPhase.SUCCEEDED


def test_a_skip_request_beats_the_trigger_rule_of_the_task_it_names() -> None:
    tasks = [task("check"), task("alert", "check", triggerRule="all_done"), task("after", "alert")]
    decision = graph.decide(tasks, {"check": succeeded("alert", "after")}, NOW)
    assert decision.skipped == ("alert", "after")
    assert decision.skipped_by == {"alert": "check", "after": "check"}
    assert decision.start == ()
    assert decision.phase == RunPhase.SUCCEEDED


def test_skip_requests_leave_started_unknown_and_failed_tasks_alone() -> None:
    tasks = [task("a"), task("b", "a"), task("c", "a"), task("d")]
    # b is running already: not skipped; "zz" is no task of the DAG; a failed task's requests do not count.
    decision = graph.decide(tasks, {"a": succeeded("b", "zz"), "b": TaskState(P.RUNNING, 1)}, NOW)
    assert decision.skipped == ()
    assert decision.start == ("c", "d")
    failed = TaskState(P.FAILED, attempts=1, skip_tasks=frozenset({"c"}))
    assert graph.decide(tasks, {"a": failed, "d": TaskState(P.RUNNING, 1)}, NOW).skipped == ()
    assert graph.skip_requests(tasks, {"a": succeeded("b", "c", "zz")}) == {"b": "a", "c": "a"}


def test_a_short_circuit_skips_every_downstream_task_it_names() -> None:
    tasks = [task("gate"), task("x", "gate"), task("y", "x"), task("z", "y", triggerRule="always")]
    decision = graph.decide(tasks, {"gate": succeeded("x", "y", "z"), "z": TaskState(P.RUNNING, 1)}, NOW)
    assert decision.skipped == ("x", "y")  # z (always) started at once, before gate finished: it runs
    assert decision.phase == RunPhase.RUNNING


# --- setup and teardown tasks ------------------------------------------------------------------------------


CLUSTER = [
    task("create", setup=True),
    task("query", "create"),
    task("delete", "create", "query", teardown=True),
]


def test_a_teardown_defaults_to_all_done_setup_success() -> None:
    assert CLUSTER[2].effective_trigger_rule == TriggerRule.ALL_DONE_SETUP_SUCCESS
    own = task("t", "a", teardown=True, triggerRule="all_done")
    assert own.effective_trigger_rule == TriggerRule.ALL_DONE
    # as_teardown sets the rule over default_args: the DAG's default trigger rule is not a teardown's.
    resolved = resolve_task(CLUSTER[2], TaskDefaults(triggerRule="one_success"), "img")
    assert resolved.trigger_rule == TriggerRule.ALL_DONE_SETUP_SUCCESS
    work = resolve_task(CLUSTER[1], TaskDefaults(triggerRule="one_success"), "img")
    assert work.trigger_rule == TriggerRule.ONE_SUCCESS


def test_a_teardown_runs_after_failed_work_and_the_run_fails_for_the_work() -> None:
    decision = graph.decide(CLUSTER, states(create=P.SUCCEEDED, query=P.FAILED), NOW)
    assert decision.start == ("delete",)
    assert run_phase.run_phase(CLUSTER, {"create": S, "query": F, "delete": S}) == RunPhase.FAILED
    assert run_phase.run_leaves(CLUSTER) == ["query"]


def test_a_failed_teardown_does_not_fail_the_run_unless_it_says_so() -> None:
    assert run_phase.run_phase(CLUSTER, {"create": S, "query": S, "delete": F}) == RunPhase.SUCCEEDED
    strict = [*CLUSTER[:2], task("delete", "create", "query", teardown=True, failRunOnFailure=True)]
    assert run_phase.run_leaves(strict) == ["delete"]
    assert run_phase.run_phase(strict, {"create": S, "query": S, "delete": F}) == RunPhase.FAILED
    assert run_phase.run_phase(strict, {"create": S, "query": F, "delete": S}) == RunPhase.SUCCEEDED


def test_a_dag_of_teardowns_only_falls_back_to_its_leaves() -> None:
    only = [task("a", teardown=True), task("b", "a", teardown=True)]
    assert run_phase.run_leaves(only) == ["b"]
    assert run_phase.run_phase(only, {"a": S, "b": F}) == RunPhase.FAILED


def test_a_failed_or_skipped_setup_fails_or_skips_its_teardown() -> None:
    decision = graph.decide(CLUSTER, states(create=P.FAILED), NOW)
    assert decision.upstream_failed == ("query", "delete")
    assert decision.phase == RunPhase.FAILED
    skipped = graph.decide(CLUSTER, states(create=P.SKIPPED), NOW)
    assert skipped.skipped == ("query", "delete")
    assert skipped.phase == RunPhase.SUCCEEDED


def test_work_in_scope_of_a_setup_waits_for_it_even_with_a_lenient_rule() -> None:
    # Airflow's setup constraint: w2 (all_done) is in create's scope (its teardown is downstream of w2).
    tasks = [
        task("create", setup=True),
        task("w1", "create"),
        task("w2", "w1", triggerRule="all_done"),
        task("delete", "create", "w2", teardown=True),
        task("outside", "w1", triggerRule="all_done"),  # delete is not downstream of it: out of scope
    ]
    decision = graph.decide(tasks, states(create=P.FAILED), NOW)
    assert decision.upstream_failed == ("w1", "w2", "delete")
    assert decision.start == ("outside",)
    skipped = graph.decide(tasks, states(create=P.SKIPPED), NOW)
    assert skipped.skipped == ("w1", "w2", "delete")
    assert skipped.start == ("outside",)
    running = graph.decide(tasks, states(create=P.RUNNING), NOW)
    assert running.start == ()


def test_a_setup_without_teardown_scopes_every_task_after_it() -> None:
    tasks = [task("s", setup=True), task("a", "s"), task("b", "a", triggerRule="all_done")]
    assert graph.decide(tasks, states(s=P.FAILED), NOW).upstream_failed == ("a", "b")


def test_a_teardown_waits_for_every_task_between_its_setup_and_it() -> None:
    tasks = [
        task("create", setup=True),
        task("a", "create"),
        task("c", "create"),
        task("b", "a", "c", triggerRule="one_success"),
        task("delete", "create", "b", teardown=True),
    ]
    between = states(create=P.SUCCEEDED, a=P.SUCCEEDED, c=P.RUNNING, b=P.SUCCEEDED)
    assert graph.decide(tasks, between, NOW).start == ()
    done = states(create=P.SUCCEEDED, a=P.SUCCEEDED, c=P.FAILED, b=P.SUCCEEDED)
    assert graph.decide(tasks, done, NOW).start == ("delete",)


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
    assert [retries.retry_delay_seconds(flaky, n) for n in range(1, 6)] == [5, 10, 20, 40, 60]
    assert retries.retry_delay_seconds(flaky, 1000) == 60
    default = task("d", retries=2)
    assert [retries.retry_delay_seconds(default, n) for n in (1, 2, 3)] == [1, 2, 4]


def test_next_attempt_at_until_retries_run_out() -> None:
    flaky = task("flaky", retries=2, retryDelaySeconds=3)
    assert retries.next_attempt_at(flaky, 1, NOW) == NOW + timedelta(seconds=3)
    assert retries.next_attempt_at(flaky, 2, NOW) == NOW + timedelta(seconds=6)
    assert retries.next_attempt_at(flaky, 3, NOW) is None
    assert retries.next_attempt_at(task("once"), 1, NOW) is None


def test_decide_ignores_states_of_unknown_tasks() -> None:
    decision = graph.decide([task("a")], states(a=P.SUCCEEDED, gone=P.FAILED), NOW)
    assert decision.phase == RunPhase.SUCCEEDED
    assert decision.phases == {"a": P.SUCCEEDED}


def setup_flags(rng: random.Random) -> dict[str, Any]:
    roll = rng.random()
    if roll < 0.15:
        return {"setup": True}
    if roll < 0.3:
        return {"teardown": True, "failRunOnFailure": rng.random() < 0.3}
    return {}


@pytest.mark.parametrize("seed", range(60))
def test_random_dags_run_to_completion_in_dependency_order(seed: int) -> None:
    """Replaying decide on random DAGs (every rule, setups, teardowns, branch skips): every task ends once,
    never before its trigger rule allows; the run ends as its effective leaves say."""
    rng = random.Random(seed)
    count = rng.randint(1, 25)
    tasks = [
        task(
            f"t{i}",
            *sorted({f"t{j}" for j in rng.sample(range(i), k=min(i, rng.randint(0, 3)))}),
            triggerRule=rng.choice(list(TriggerRule)).value,
            **setup_flags(rng),
        )
        for i in range(count)
    ]
    fails = {t.id: rng.random() < 0.25 for t in tasks}
    # Some tasks succeed asking to skip a few tasks (any ids: started ones and unknown ones are ignored).
    ids = [x.id for x in tasks] + ["nope"]
    asks = {t.id: frozenset(rng.sample(ids, k=2)) for t in tasks if rng.random() < 0.2}
    states: dict[str, TaskState] = {}
    for _ in range(count + 1):
        decision = graph.decide(tasks, states, NOW)
        for tid in (*decision.start, *decision.upstream_failed, *decision.skipped):
            assert tid not in states, f"{tid} decided twice"
        assert set(decision.skipped_by) <= set(decision.skipped)
        for tid, by in decision.skipped_by.items():
            assert tid in asks[by] and states[by].phase == P.SUCCEEDED
        for tid in decision.start:
            spec = tasks[int(tid[1:])]
            # Marks of this same decision count: decide cascades them in topological order.
            ups = [decision.phases.get(up) for up in spec.upstream_ids]
            rule = spec.effective_trigger_rule
            if not ups or rule == TriggerRule.ALWAYS:
                continue  # runs at once
            if rule == TriggerRule.ONE_SUCCESS:
                assert P.SUCCEEDED in ups, tid
            elif rule == TriggerRule.ONE_FAILED:
                assert P.FAILED in ups or P.UPSTREAM_FAILED in ups, tid
            elif rule == TriggerRule.ONE_DONE:
                assert P.SUCCEEDED in ups or P.FAILED in ups, tid
            else:
                assert all(up is not None and up.finished for up in ups), tid
        for tid in decision.upstream_failed:
            states[tid] = TaskState(P.UPSTREAM_FAILED)
        for tid in decision.skipped:
            states[tid] = TaskState(P.SKIPPED)
        for tid in decision.start:
            if fails[tid]:
                states[tid] = TaskState(P.FAILED, attempts=1)
            else:
                states[tid] = TaskState(P.SUCCEEDED, attempts=1, skip_tasks=asks.get(tid, frozenset()))
        if decision.phase != RunPhase.RUNNING:
            break
    assert set(states) == {t.id for t in tasks}
    assert decision.progress == f"{count}/{count}"
    failing = (P.FAILED, P.UPSTREAM_FAILED)
    leaves_failed = any(states[tid].phase in failing for tid in run_phase.run_leaves(tasks))
    assert decision.phase == (RunPhase.FAILED if leaves_failed else RunPhase.SUCCEEDED)


# --- sensors: UpForReschedule -----------------------------------------------------------------------------


def test_a_reschedule_is_due_at_its_time_and_wakes_the_run_then() -> None:
    tasks = [task("sensor"), task("after", "sensor"), task("other", retries=1)]
    poke_at = NOW + timedelta(seconds=30)
    retry_at = NOW + timedelta(seconds=50)
    waiting = {
        "sensor": TaskState(P.UP_FOR_RESCHEDULE, attempts=2, next_attempt_at=poke_at, reschedules=2),
        "other": TaskState(P.RETRYING, attempts=1, next_attempt_at=retry_at),
    }
    decision = graph.decide(tasks, waiting, NOW)
    assert (decision.start, decision.retry, decision.upstream_failed, decision.skipped) == ((), (), (), ())
    assert decision.wake_at == poke_at  # the earliest of the reschedule and the retry
    assert decision.phase == RunPhase.RUNNING
    assert decision.progress == "0/3"  # up for reschedule is not finished
    assert decision.phases == {"sensor": P.UP_FOR_RESCHEDULE, "other": P.RETRYING}
    due = graph.decide(tasks, waiting, poke_at)
    assert due.retry == ("sensor",)  # the handler starts attempt attempts + 1
    assert due.wake_at == retry_at


def test_an_up_for_reschedule_upstream_holds_every_trigger_rule() -> None:
    waiting = TaskState(P.UP_FOR_RESCHEDULE, attempts=1, next_attempt_at=NOW + timedelta(seconds=5))
    for rule in TriggerRule:
        if rule == TriggerRule.ALWAYS:
            continue
        tasks = [task("sensor"), task("after", "sensor", triggerRule=rule.value)]
        decision = graph.decide(tasks, {"sensor": waiting}, NOW)
        assert "after" not in (*decision.start, *decision.skipped, *decision.upstream_failed), rule
    assert trigger_rules.evaluate_trigger_rule(TriggerRule.ALL_DONE, [P.UP_FOR_RESCHEDULE]) is None


def test_reschedules_use_no_retries() -> None:
    flaky = task("flaky", retries=1, retryDelaySeconds=3)
    # Attempt 4 failed after three reschedules: it was the first try, one retry is left (delay of try 1).
    assert retries.next_attempt_at(flaky, 4, NOW, reschedules=3) == NOW + timedelta(seconds=3)
    assert retries.next_attempt_at(flaky, 5, NOW, reschedules=3) is None
    assert retries.next_attempt_at(flaky, 4, NOW) is None
