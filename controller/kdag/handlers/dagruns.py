"""DAGRun reconciliation: read the run, its TaskRuns and pods, call the pure deciders, write what changed.

`settle.settle` brings each TaskRun in line with its pods and `graph.decide` says what runs next; this
module only reads, applies their answers and posts Events, through the helpers beside it: `run_dag` (the DAG
a run follows), `taskruns` (reading, settling, making and marking TaskRuns), `attempt_pods` (an attempt's
pod), `run_status` (the run's status) and `run_cleanup` (deleting finished runs). Level-based and
idempotent: every name is deterministic and AlreadyExists counts as success when what exists is this run's
own (its owner's uid), so a pass interrupted at any point (a killed controller) is finished by the next one
without duplicating a pod; what belongs to anything else is never adopted (docs/design.md, "Names").
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Coroutine
from datetime import UTC, datetime
from typing import Any

import kopf
from kdag_runner import keys

from kdag import graph, mapping, metrics, questions
from kdag.api.models import RunPhase, TaskPhase, TaskSpec
from kdag.handlers import events, run_cleanup, run_dag, run_failures, run_objects, run_status, taskruns
from kdag.handlers import questions as question_answers
from kdag.handlers.attempt_pods import start_attempt
from kdag.handlers.runtime import Reconcile, RunKey, Runtime, coalesced, wake_later
from kdag.handlers.task_rbac import ensure_task_rbac
from kdag.kube import CONNECTION_POOL, DAGRUN
from kdag.render import RunInfo
from kdag.task_state import TaskState

logger = logging.getLogger("kdag.dagruns")

RETRY_AFTER_ERROR_SECONDS = 5.0
RETRY_AFTER_CONFLICT_SECONDS = 30.0
"""How soon to look again when a TaskRun's name is taken by an object this run does not own."""
TRIGGER_WAIT_SECONDS = 1.0
"""How soon to look again at a TriggerDagRunOperator's request still under way (a reset's old run going)."""
STEPS_AT_ONCE = CONNECTION_POOL
"""Tasks of one pass started (or marked) at once: as many as the client has connections to the API server."""


async def dagrun_created(
    namespace: str | None, name: str | None, spec: kopf.Spec, status: kopf.Status, memo: Runtime, **_: Any
) -> None:
    """A new run, or one found at controller start: reconcile it unless it has finished (and has no TTL)."""
    finished = status.get("phase") in (RunPhase.SUCCEEDED, RunPhase.FAILED)
    if namespace and name and (not finished or spec.get("ttlSecondsAfterFinished") is not None):
        await request_reconcile(memo, (namespace, name))


async def dagrun_deleted(
    type: str | None, namespace: str | None, name: str | None, memo: Runtime, **_: Any
) -> None:
    """Forget a deleted run's in-process state; its TaskRuns, pods and ConfigMaps go by owner references.

    A watch event, not kopf.on.delete: that would need a finalizer on every run.
    """
    if type == "DELETED" and namespace and name:
        memo.forget_run((namespace, name))
        metrics.forget_run(f"{namespace}/{name}")


async def request_reconcile(runtime: Runtime, key: RunKey) -> None:
    """Reconcile the run now (coalesced with a pass already under way)."""
    await coalesced(runtime, key, _reconcile_of(runtime))


async def reconcile_run(runtime: Runtime, key: RunKey) -> None:
    """One pass, never raising to kopf. A failure it would meet again (the API server refused a write, a
    name kdag cannot derive) fails the run, naming why; any other is retried a little later, after an
    Event (`run_failures`)."""
    try:
        await _reconcile(runtime, key)
    except Exception as error:
        try:
            if run_failures.structural(error):
                await run_failures.fail_run(runtime, key, error)
                return
            await run_failures.report_retry(runtime, key, error, RETRY_AFTER_ERROR_SECONDS)
        except Exception:
            logger.exception("reporting the failure of DAGRun %s/%s failed", *key)
        logger.exception("reconciling DAGRun %s/%s failed; retrying in %ss", *key, RETRY_AFTER_ERROR_SECONDS)
        _wake(runtime, key, RETRY_AFTER_ERROR_SECONDS)


def _reconcile_of(runtime: Runtime) -> Reconcile:
    """A pass over one run, for timers (a retry's backoff, a run's TTL)."""
    return functools.partial(reconcile_run, runtime)


def _wake(runtime: Runtime, key: RunKey, delay: float) -> None:
    wake_later(runtime, key, delay, _reconcile_of(runtime))


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


async def _all(*steps: Coroutine[Any, Any, None]) -> None:
    """Run the steps concurrently, at most `STEPS_AT_ONCE` at a time; every step runs to its end, then the
    first failure is raised. Unbounded, a fan-out of 5,000 would render every TaskRun and pod at once to
    wait for the client's connections: hundreds of MiB held for what the connections pass 64 at a time."""
    gate = asyncio.Semaphore(STEPS_AT_ONCE)

    async def gated(step: Coroutine[Any, Any, None]) -> None:
        async with gate:
            await step

    results = await asyncio.gather(*(gated(step) for step in steps), return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result


async def _reconcile(runtime: Runtime, key: RunKey) -> None:
    api = runtime.api
    namespace, name = key
    dagrun = await api.get(DAGRUN, namespace, name)
    if dagrun is None or dagrun["metadata"].get("deletionTimestamp"):
        return  # a run being deleted (a TriggerDagRunOperator's reset waits for it to go) starts nothing
    status = dagrun.get("status") or {}
    if status.get("phase") in (RunPhase.SUCCEEDED, RunPhase.FAILED):
        await run_cleanup.expire(runtime, key, dagrun, _reconcile_of(runtime))
        return
    dag = await run_dag.dag_of(runtime, dagrun)
    if dag is None:
        return
    run = RunInfo.from_dagrun(dagrun, dag)
    run_uid = dagrun["metadata"]["uid"]
    now = _now()

    found, pods_by_task = await taskruns.read_run(runtime, namespace, name, run_uid)
    states: dict[str, TaskState] = {}
    asked: dict[str, questions.Asked] = {}  # questions about other runs, by TaskRun key
    for task_id, taskrun in found.items():
        state, questioned = await taskruns.settle_taskrun(
            runtime, run, taskrun, pods_by_task.get(task_id, {}), now
        )
        if state is not None:
            states[task_id] = state
        if questioned != questions.Asked():
            asked[task_id] = questioned

    plain, instances = mapping.split_states(states)
    decision = graph.decide(dag.tasks, plain, now, defaults=dag.defaults, instances=instances)
    mapped = mapping.mapped_xcom_keys(decision.lengths, instances)
    pushed = {task_id: state.xcom_keys for task_id, state in plain.items() if state.xcom_keys}
    runner_image = runtime.settings.runner_image

    async def mark(task_id: str, phase: TaskPhase, map_index: int | None = None) -> None:
        await taskruns.mark(runtime, run, run_uid, decision, task_id, phase, now, map_index)

    async def start(task_id: str, map_index: int | None = None) -> None:
        task = dag.resolved_task(task_id, runner_image)
        taskrun = found.get(taskruns.taskrun_key(task_id, map_index))
        if taskrun is None:
            taskrun = await taskruns.ensure_taskrun(runtime, run, run_uid, task, map_index)
            if taskrun.get("status"):
                # It existed already, with a state this pass has not seen (kept objects lag a watch
                # event): the next pass settles it instead of starting it over.
                runtime.run_state(key).dirty = True
                return
        await start_attempt(runtime, run, taskrun, task, 1, now, mapped=mapped, pushed=pushed)

    async def retry(task_id: str, map_index: int | None = None) -> None:
        key = taskruns.taskrun_key(task_id, map_index)
        taskrun = found[key]
        task = TaskSpec.model_validate(taskrun["spec"]["task"])
        state = states[key]
        answers = None
        questioned, try_number = asked.get(key), state.attempts + 1 - state.reschedules
        step = questions.for_attempt(questioned, try_number)
        if step == "wait":
            _wake(runtime, (namespace, name), TRIGGER_WAIT_SECONDS)  # the answer is not there yet
            return
        if step == "answer" and questioned is not None:
            answers = await question_answers.answers_for(runtime, namespace, questioned, try_number)
        await start_attempt(
            runtime,
            run,
            taskrun,
            task,
            state.attempts + 1,
            now,
            state.reschedules,
            mapped=mapped,
            pushed=pushed,
            answers=answers,
        )

    if decision.start or decision.retry or decision.start_instances or decision.retry_instances:
        await ensure_task_rbac(runtime, namespace)
    # Independent tasks are written concurrently: a fan-out of N starts in about the time of one.
    try:
        await _all(
            *(mark(t, TaskPhase.UPSTREAM_FAILED) for t in decision.upstream_failed),
            *(mark(t, TaskPhase.SKIPPED) for t in decision.skipped),
            *(mark(t, TaskPhase.FAILED) for t in decision.failed),
            *(mark(t, TaskPhase.UPSTREAM_FAILED, i) for t, i in decision.upstream_failed_instances),
            *(mark(t, TaskPhase.SKIPPED, i) for t, i in decision.skipped_instances),
            *(start(t) for t in decision.start),
            *(retry(t) for t in decision.retry),
            *(start(t, i) for t, i in decision.start_instances),
            *(retry(t, i) for t, i in decision.retry_instances),
        )
    except taskruns.NameTaken as taken:
        # The task has no TaskRun of its own to fail: the run says why, and looks again later.
        logger.warning("DAGRun %s/%s: %s", namespace, name, taken)
        events.post(runtime, keys.DAGRUN_KIND, dagrun, "Warning", "NameTaken", str(taken))
        _wake(runtime, key, RETRY_AFTER_CONFLICT_SECONDS)
    if decision.wake_at is not None:
        _wake(runtime, key, (decision.wake_at - _now()).total_seconds() + 0.05)
    finished = await run_status.write_run_status(runtime, run, dagrun, decision, now)
    if finished is None:
        # A resync, as an informer's: a run under way is looked at again (its objects listed anew) at
        # least this often, so a pod event lost between two watches never leaves it waiting for good.
        _wake(runtime, key, run_objects.RELIST_SECONDS)
    held = runtime.run_state(key)
    if held.status_due_in is not None:
        _wake(runtime, key, held.status_due_in + 0.05)  # the progress held back is written then
        held.status_due_in = None
    if finished is not None:
        runtime.objects.forget(key)  # nothing more to settle: its kept TaskRuns and pods are let go
        # Just finished: the DAG's oldest runs beyond its history limit go, and this one after its TTL.
        await run_cleanup.prune_history(api, namespace, run.dag_name)
        await run_cleanup.expire(runtime, key, {**dagrun, "status": finished}, _reconcile_of(runtime))
