"""Trigger rules, pure: what a task that has not started becomes by its rule over its upstream tasks
(Airflow 3's TriggerRuleDep; docs/design.md, "Trigger rules"), gated by its setups and teardown scope."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from kdag import mapping
from kdag.api.models import TaskDefaults, TaskPhase, TaskSpec, TriggerRule, default_trigger_rule
from kdag.setup_teardown import SetupScope


def evaluate_trigger_rule(
    rule: TriggerRule,
    upstream_phases: Iterable[TaskPhase | None],
    setup_phases: Iterable[TaskPhase | None] = (),
) -> TaskPhase | None:
    """What a task that has not started becomes, by Airflow's rule over its direct upstream tasks.

    Returns RUNNING when the task may start now, UPSTREAM_FAILED or SKIPPED when it never will, and None
    while it must wait. `None` entries in `upstream_phases` are upstream tasks not started yet (as RUNNING,
    RETRYING or PENDING: not finished). `setup_phases` are the phases of the upstream tasks that are setup
    tasks (a part of `upstream_phases`; only all_done_setup_success reads them). A task with no upstream
    tasks, and a task with the `always` rule, runs at once.

    The marks follow Airflow's TriggerRuleDep with `flag_upstream_failed`: a rule that can no longer hold
    marks the task as soon as that is known, without waiting for the other upstream tasks.
    """
    phases = list(upstream_phases)
    if not phases or rule == TriggerRule.ALWAYS:
        return TaskPhase.RUNNING
    total = len(phases)
    success = sum(p == TaskPhase.SUCCEEDED for p in phases)
    skipped = sum(p == TaskPhase.SKIPPED for p in phases)
    failed = sum(p == TaskPhase.FAILED for p in phases)
    upstream_failed = sum(p == TaskPhase.UPSTREAM_FAILED for p in phases)
    all_done = success + skipped + failed + upstream_failed == total
    run, wait = TaskPhase.RUNNING, None
    skip, fail = TaskPhase.SKIPPED, TaskPhase.UPSTREAM_FAILED

    match rule:
        case TriggerRule.ALL_SUCCESS:
            if failed or upstream_failed:
                return fail
            if skipped:
                return skip
            return run if success == total else wait
        case TriggerRule.ALL_FAILED:
            if success or skipped:
                return skip
            return run if all_done else wait
        case TriggerRule.ALL_DONE:
            return run if all_done else wait
        case TriggerRule.ALL_DONE_MIN_ONE_SUCCESS:
            # Airflow counts a skipped upstream as "not done" for this rule: the task is skipped at once.
            if skipped:
                return skip
            if not all_done:
                return wait
            return run if success else fail
        case TriggerRule.ALL_DONE_SETUP_SUCCESS:
            if not all_done:
                return wait
            setups = list(setup_phases)
            if setups and all(p == TaskPhase.SKIPPED for p in setups):
                return skip
            if setups and TaskPhase.SUCCEEDED not in setups:
                return fail
            return run
        case TriggerRule.ALL_SKIPPED:
            if success or failed or upstream_failed:
                return skip
            return run if all_done else wait
        case TriggerRule.ONE_SUCCESS:
            if success:
                return run
            if not all_done:
                return wait
            return skip if skipped == total else fail
        case TriggerRule.ONE_FAILED:
            if failed or upstream_failed:
                return run
            return skip if all_done else wait
        case TriggerRule.ONE_DONE:
            # upstream_failed and skipped upstream tasks are not "done" for one_done.
            if success or failed:
                return run
            return skip if all_done else wait
        case TriggerRule.NONE_FAILED:
            if failed or upstream_failed:
                return fail
            return run if all_done else wait
        case TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS:
            if failed or upstream_failed:
                return fail
            if skipped == total:
                return skip
            return run if all_done else wait
        case TriggerRule.NONE_SKIPPED:
            if skipped:
                return skip
            return run if all_done else wait
    raise ValueError(f"unknown trigger rule {rule!r}")


def task_outcome(
    task: TaskSpec,
    by_id: Mapping[str, TaskSpec],
    phases: Mapping[str, TaskPhase],
    scope: SetupScope,
    defaults: TaskDefaults | None,
    expanded: Mapping[str, Sequence[TaskPhase | None]] | None = None,
    view: mapping.UpstreamView | None = None,
) -> TaskPhase | None:
    """What an undecided task becomes now: its trigger rule, gated by its setups (teardown scope).

    An upstream task in `expanded` (a mapped task that expanded) counts once per instance, with the
    instance's phase (None: not started), as Airflow's trigger rules count every mapped task instance;
    `view` says otherwise for a task of a mapped task group (`mapping.upstream_view`).
    """
    expanded = expanded or {}

    def each(up: str) -> Sequence[TaskPhase | None]:
        if view is not None:
            return view(up)
        return expanded[up] if up in expanded else [phases.get(up)]

    rule = task.trigger_rule or default_trigger_rule(task, defaults)
    ups = task.upstream_ids
    if not ups or rule == TriggerRule.ALWAYS:
        return TaskPhase.RUNNING
    setups_ready = True
    indirect = [phases.get(s) for s in scope.indirect_setups.get(task.id, ())]
    if indirect:
        if TaskPhase.FAILED in indirect or TaskPhase.UPSTREAM_FAILED in indirect:
            return TaskPhase.UPSTREAM_FAILED
        if TaskPhase.SKIPPED in indirect:
            return TaskPhase.SKIPPED
        setups_ready = all(p == TaskPhase.SUCCEEDED for p in indirect)
    if view is None and not any(up in phases or up in expanded for up in ups):
        # No upstream task has started: every rule but `always` waits (a cheap answer for the tasks deep
        # in a big DAG, asked on every pass).
        return None
    outcome = evaluate_trigger_rule(
        rule,
        (phase for up in ups for phase in each(up)),
        (phase for up in ups if by_id[up].is_setup for phase in each(up)),
    )
    if outcome != TaskPhase.RUNNING:
        return outcome
    if not setups_ready:
        return None
    between = scope.teardown_scope.get(task.id, ())
    if not all(tid in phases and phases[tid].finished for tid in between):
        return None
    return outcome
