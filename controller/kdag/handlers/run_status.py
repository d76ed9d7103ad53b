"""A DAGRun's status after one reconcile pass: what `graph.decide` says of the run, written as one merge patch
of the fields that changed, and the Event of a transition (RunStarted, RunSucceeded, RunFailed)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import datetime

from kdag_runner import keys

from kdag import conditions, graph, metrics, names, patches
from kdag.api.models import DAGRunStatus, MappedTaskStatus, RunPhase, TaskPhase
from kdag.handlers import events
from kdag.handlers.runtime import Runtime
from kdag.kube import DAGRUN, JSONObject
from kdag.render import RunInfo


def failure_message(phases: Mapping[str, TaskPhase]) -> str:
    """Why a run failed: its failed and upstream-failed tasks."""
    failed = sorted(tid for tid, phase in phases.items() if phase == TaskPhase.FAILED)
    upstream_failed = sorted(tid for tid, phase in phases.items() if phase == TaskPhase.UPSTREAM_FAILED)
    parts = []
    if failed:
        parts.append("failed: " + ", ".join(failed))
    if upstream_failed:
        parts.append("upstream failed: " + ", ".join(upstream_failed))
    return "; ".join(parts)


def _hold_back(
    runtime: Runtime, key: tuple[str, str], status: JSONObject, patch: JSONObject, finished: bool
) -> bool:
    """Whether this pass leaves a change of progress to a later one (`run_status_interval_seconds`): never
    a change of phase or generation, the run's first status or its last. The pass that holds it back sets
    when it is due (`RunState.status_due_in`), so the newest progress is always written."""
    interval = runtime.settings.run_status_interval_seconds
    state = runtime.run_state(key)
    urgent = finished or any(
        status.get(field) != patch.get(field) for field in ("phase", "observedGeneration", "startTime")
    )
    if urgent or interval <= 0 or state.status_written_at is None:
        return False
    waited = time.monotonic() - state.status_written_at
    if waited >= interval:
        return False
    state.status_due_in = interval - waited
    return True


async def write_run_status(
    runtime: Runtime, run: RunInfo, dagrun: JSONObject, decision: graph.Decision, now: datetime
) -> JSONObject | None:
    """Write what changed of the run's status and post its transition Event.

    Returns the status as written when the run has just finished (the caller cleans up finished runs then),
    else None.
    """
    namespace, name, dag = run.namespace, run.name, run.dag
    status = dagrun.get("status") or {}
    generation = dagrun["metadata"].get("generation")
    phases = dict(decision.phases)
    for task_id in (*decision.start, *decision.retry):
        phases[task_id] = TaskPhase.RUNNING
    run_phase = decision.phase
    message = f"{decision.progress} tasks finished"
    if run_phase == RunPhase.FAILED:
        message = failure_message(phases)
    finished = run_phase in (RunPhase.SUCCEEDED, RunPhase.FAILED)
    current = DAGRunStatus.model_validate(status)
    wanted = DAGRunStatus(
        phase=run_phase,
        progress=decision.progress,
        tasks=dict(sorted(phases.items())),
        # One summary per mapped task that expanded, however many instances: the status stays small.
        mapped={
            tid: MappedTaskStatus(
                length=decision.lengths[tid], phases={p.value: n for p, n in sorted(counts.items())}
            )
            for tid, counts in sorted(decision.instance_phases.items())
        }
        or None,
        start_time=current.start_time or now,
        observed_generation=generation,
        conditions=conditions.merge_conditions(
            status.get("conditions"), conditions.run_conditions(run_phase.value, message), generation, now
        ),
    )
    if finished:
        wanted.finish_time = now
    patch = wanted.to_patch()
    # Only the fields whose value changed: most passes write one or two of them.
    changed = {k: patches.merge_patch(status.get(k), v) for k, v in patch.items() if status.get(k) != v}
    if changed and _hold_back(runtime, (namespace, name), status, patch, finished):
        changed = {}
    if changed:
        await runtime.api.patch_status(DAGRUN, namespace, name, changed)
        runtime.run_state((namespace, name)).status_written_at = time.monotonic()
    metrics.observe_run_phase(f"{namespace}/{name}", run_phase.value)
    if status.get("phase") == run_phase.value:
        return None
    if run_phase == RunPhase.FAILED:
        events.post(
            runtime, keys.DAGRUN_KIND, dagrun, "Warning", "RunFailed", f"DAGRun {name} failed: {message}"
        )
    elif run_phase == RunPhase.SUCCEEDED:
        message = f"DAGRun {name} succeeded: {decision.progress}"
        events.post(runtime, keys.DAGRUN_KIND, dagrun, "Normal", "RunSucceeded", message)
    elif run_phase == RunPhase.RUNNING:
        events.post(runtime, keys.DAGRUN_KIND, dagrun, "Normal", "RunStarted", f"DAGRun {name} started")
    if not finished:
        return None
    # The handoff times of its tasks are no longer needed.
    for task in dag.tasks:
        runtime.finished_seen_at.pop((namespace, names.taskrun_name(name, task.id)), None)
        for index in range(decision.lengths.get(task.id, 0)):
            runtime.finished_seen_at.pop((namespace, names.taskrun_name(name, task.id, index)), None)
    return {**status, **changed}
