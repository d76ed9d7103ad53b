"""DAGRun reconciliation: read the run, its TaskRuns and pods, call the pure deciders, write what changed.

`settle.settle` brings each TaskRun in line with its pods and `graph.decide` says what runs next; this
module only reads, applies their answers and posts Events. Level-based and idempotent: every name is
deterministic and AlreadyExists counts as success, so a pass interrupted at any point (a killed
controller) is finished by the next one without duplicating a pod.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Coroutine, Mapping
from datetime import UTC, datetime
from typing import Any

import kopf
from kdag_runner import keys

from kdag import conditions, graph, history, manifests, metrics, names, params, patches, policy, settle
from kdag.api.models import (
    DAGRunStatus,
    DAGSpec,
    MappedTaskStatus,
    RunPhase,
    StatusModel,
    TaskPhase,
    TaskRunStatus,
    TaskSpec,
)
from kdag.api.validation import parse_dag_spec
from kdag.graph import TaskState
from kdag.handlers import events
from kdag.handlers.runtime import RunKey, Runtime, coalesced, wake_later
from kdag.kube import DAG, DAGRUN, POD, TASKRUN, JSONObject, Kind, KubeApi, KubeApiError
from kdag.render import RunInfo, render_task_pod

logger = logging.getLogger("kdag.dagruns")

RETRY_AFTER_ERROR_SECONDS = 5.0


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
    await coalesced(runtime, key, functools.partial(reconcile_run, runtime))


async def reconcile_run(runtime: Runtime, key: RunKey) -> None:
    """One pass; an API failure is logged and the pass is retried a little later, never raised to kopf."""
    try:
        await _reconcile(runtime, key)
    except Exception:
        logger.exception("reconciling DAGRun %s/%s failed; retrying in %ss", *key, RETRY_AFTER_ERROR_SECONDS)
        _wake(runtime, key, RETRY_AFTER_ERROR_SECONDS)


def _wake(runtime: Runtime, key: RunKey, delay: float) -> None:
    wake_later(runtime, key, delay, functools.partial(reconcile_run, runtime))


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


async def _write_status(api: KubeApi, kind: Kind, namespace: str, name: str, status: StatusModel) -> None:
    """One merge patch of the status subresource, from a pydantic status model."""
    await api.patch_status(kind, namespace, name, status.to_patch())


async def _ensure_taskrun(
    runtime: Runtime, run: RunInfo, run_uid: str, task: TaskSpec, map_index: int | None = None
) -> JSONObject:
    """The TaskRun of `task` (of its instance `map_index`, for a mapped task), created if missing."""
    manifest = manifests.taskrun_manifest(run.namespace, run.dag_name, run.name, run_uid, task, map_index)
    created = await runtime.api.create_if_absent(manifest, run.namespace)
    if created is not None:
        return created
    existing = await runtime.api.get(TASKRUN, run.namespace, manifest["metadata"]["name"])
    if existing is None:
        raise RuntimeError(f"TaskRun {manifest['metadata']['name']} exists and vanished; will retry")
    return existing


async def _ensure_task_rbac(runtime: Runtime, namespace: str) -> None:
    """The task ServiceAccount, Role and RoleBinding, made once per namespace per process."""
    if namespace in runtime.rbac_ready:
        return
    for obj in policy.task_rbac(namespace, runtime.settings.task_service_account):
        await runtime.api.create_if_absent(obj, namespace)
    runtime.rbac_ready.add(namespace)


def _observe_handoff(runtime: Runtime, run: RunInfo, task: TaskSpec) -> None:
    """Time from the last upstream pod finishing (as this process saw it) to this pod being created."""
    seen = [
        runtime.finished_seen_at.get((run.namespace, names.taskrun_name(run.name, up)))
        for up in task.upstream_ids
    ]
    if seen and all(s is not None for s in seen):
        metrics.HANDOFF_SECONDS.observe(max(0.0, time.time() - max(s for s in seen if s is not None)))


async def _start_attempt(
    runtime: Runtime,
    run: RunInfo,
    taskrun: JSONObject,
    task: TaskSpec,
    attempt: int,
    now: datetime,
    reschedules: int = 0,
    mapped: Mapping[str, list[list[str]]] | None = None,
) -> None:
    """Create the pod of `attempt` and record it in the TaskRun status.

    `mapped`: the XCom keys of each instance of the mapped tasks of the run (`_mapped_inputs`); the pod of
    a mapped task's instance carries its `spec.mapIndex`.

    `reschedules`: the attempts before it that ended up for reschedule (settled this pass, so not read from
    `taskrun`, which was read before); the pod gets them and the task's first start for a sensor's timeout.
    """
    api = runtime.api
    await _ensure_task_rbac(runtime, run.namespace)
    meta = taskrun["metadata"]
    current = TaskRunStatus.model_validate(taskrun.get("status") or {})
    pod = render_task_pod(
        run=run,
        task=task,
        taskrun_name=meta["name"],
        taskrun_uid=meta["uid"],
        attempt=attempt,
        settings=runtime.settings,
        task_start=current.start_time or now,
        reschedules=reschedules,
        map_index=taskrun["spec"].get("mapIndex"),
        mapped=mapped,
    )
    try:
        created = await api.create_if_absent(pod, run.namespace)
    except KubeApiError as error:
        if "serviceaccount" not in str(error).lower():
            raise
        # The namespace was made anew since this process cached its task RBAC: make it again, once.
        runtime.rbac_ready.discard(run.namespace)
        await _ensure_task_rbac(runtime, run.namespace)
        created = await api.create_if_absent(pod, run.namespace)
    if created is not None:
        _observe_handoff(runtime, run, task)
    started = TaskRunStatus(
        phase=TaskPhase.RUNNING,
        attempts=attempt,
        pod_name=pod["metadata"]["name"],
        start_time=current.start_time or now,
        next_attempt_at=None,
    )
    await _write_status(api, TASKRUN, run.namespace, meta["name"], started)
    metrics.TASKS.labels(phase=TaskPhase.RUNNING.value).inc()


async def _settle_taskrun(
    runtime: Runtime, run: RunInfo, taskrun: JSONObject, pods: Mapping[int, JSONObject], now: datetime
) -> TaskState | None:
    """Apply `settle.settle` to one TaskRun: write its status patch, post its Events, count its metrics."""
    name = taskrun["metadata"]["name"]
    task = TaskSpec.model_validate(taskrun["spec"]["task"])
    status = TaskRunStatus.model_validate(taskrun.get("status") or {})
    outcome = settle.settle(
        status, pods, task, now, run_name=run.name, map_index=taskrun["spec"].get("mapIndex")
    )
    if outcome.finished is not None:
        runtime.finished_seen_at.setdefault((run.namespace, name), time.time())
        if outcome.finished.xcom_bytes:
            metrics.XCOM_BYTES.inc(outcome.finished.xcom_bytes)
    if outcome.patch is not None:
        await _write_status(runtime.api, TASKRUN, run.namespace, name, outcome.patch)
        metrics.TASKS.labels(phase=outcome.phase.value).inc()
    for event in outcome.events:
        events.post(runtime, keys.TASKRUN_KIND, taskrun, event.type, event.reason, event.message)
    return outcome.state


async def _load_dag(api: KubeApi, dagrun: JSONObject) -> tuple[DAGSpec | None, str]:
    """The DAG spec of the run: its snapshot, or the DAG as it is now; else why there is none."""
    snapshot = (dagrun.get("status") or {}).get("dag")
    if snapshot:
        return DAGSpec.model_validate(snapshot), ""
    namespace = dagrun["metadata"]["namespace"]
    dag_name = str(((dagrun.get("spec") or {}).get("dagRef") or {}).get("name") or "")
    dag = await api.get(DAG, namespace, dag_name)
    if dag is None:
        return None, f"spec.dagRef.name: DAG {dag_name!r} does not exist in namespace {namespace!r}"
    model, problems = parse_dag_spec(dag.get("spec") or {})
    if model is None or problems:
        return None, f"DAG {dag_name!r} is invalid: " + "; ".join(problems)
    return model, ""


async def _stall(runtime: Runtime, dagrun: JSONObject, reason: str, message: str) -> None:
    status = dagrun.get("status") or {}
    meta = dagrun["metadata"]
    wanted = conditions.merge_conditions(
        status.get("conditions"),
        conditions.invalid_conditions(reason, message),
        meta.get("generation"),
        _now(),
    )
    stalled = DAGRunStatus(phase=RunPhase.PENDING, conditions=wanted)
    if stalled.to_patch()["conditions"] != status.get("conditions"):
        await _write_status(runtime.api, DAGRUN, meta["namespace"], meta["name"], stalled)
        events.post(runtime, keys.DAGRUN_KIND, dagrun, "Warning", reason, message)


async def _all(*steps: Coroutine[Any, Any, None]) -> None:
    """Run the steps concurrently; every step runs to its end, then the first failure is raised."""
    results = await asyncio.gather(*steps, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result


async def _expire(runtime: Runtime, key: RunKey, dagrun: JSONObject) -> None:
    """Delete a finished run past spec.ttlSecondsAfterFinished, or look again when it will be."""
    expiry = history.ttl_expiry(dagrun)
    if expiry is None:
        return
    wait = (expiry - _now()).total_seconds()
    if wait > 0:
        _wake(runtime, key, wait + 0.5)
    elif await runtime.api.delete(DAGRUN, key[0], key[1]):
        logger.info("deleted DAGRun %s/%s: its ttlSecondsAfterFinished has passed", *key)


async def _prune_history(api: KubeApi, namespace: str, dag_name: str) -> None:
    """Delete the DAG's oldest finished runs beyond its spec.runHistoryLimit."""
    dag = await api.get(DAG, namespace, dag_name)
    if dag is None:
        return
    limit = history.run_history_limit(dag.get("spec") or {})
    runs = [
        r
        for r in await api.list(DAGRUN, namespace)
        if ((r.get("spec") or {}).get("dagRef") or {}).get("name") == dag_name
    ]
    for old in history.runs_beyond_history(runs, limit):
        if await api.delete(DAGRUN, namespace, old):
            logger.info(
                "deleted DAGRun %s/%s: beyond the run history limit %d of DAG %s",
                namespace,
                old,
                limit,
                dag_name,
            )


def _failure_message(phases: Mapping[str, TaskPhase]) -> str:
    failed = sorted(tid for tid, phase in phases.items() if phase == TaskPhase.FAILED)
    upstream_failed = sorted(tid for tid, phase in phases.items() if phase == TaskPhase.UPSTREAM_FAILED)
    parts = []
    if failed:
        parts.append("failed: " + ", ".join(failed))
    if upstream_failed:
        parts.append("upstream failed: " + ", ".join(upstream_failed))
    return "; ".join(parts)


async def _read_run(
    api: KubeApi, namespace: str, name: str
) -> tuple[dict[str, JSONObject], dict[str, dict[int, JSONObject]]]:
    """The run's TaskRuns by task id, and its pods by task id and attempt; an instance of a mapped task (a
    TaskRun with spec.mapIndex, pods labelled with the map index) by `graph.instance_key`: `task[i]`."""
    selector = {names.DAGRUN_LABEL: names.label_value(name)}
    listed, pods = await asyncio.gather(
        api.list(TASKRUN, namespace, selector), api.list(POD, namespace, selector)
    )
    taskruns = {_taskrun_key(tr["spec"]["taskId"], tr["spec"].get("mapIndex")): tr for tr in listed}
    pods_by_task: dict[str, dict[int, JSONObject]] = {}
    for pod in pods:
        labels = pod["metadata"].get("labels", {})
        task_id = labels.get(names.TASK_LABEL)
        index = labels.get(names.MAP_INDEX_LABEL)
        if task_id:
            key = _taskrun_key(task_id, int(index) if index and index.isdigit() else None)
            pods_by_task.setdefault(key, {})[settle.attempt_of(pod)] = pod
    return taskruns, pods_by_task


def _taskrun_key(task_id: str, map_index: int | None) -> str:
    return task_id if map_index is None else graph.instance_key(task_id, map_index)


def _mapped_inputs(
    decision: graph.Decision, instances: Mapping[str, Mapping[int, TaskState]]
) -> dict[str, list[list[str]]]:
    """For every mapped task of the run: the ConfigMap keys each instance pushed, by map index (empty for
    a mapped task marked as a whole). Read from this pass's settled states, which are newer than the
    TaskRuns listed before it: a pod started now sees what an instance that just finished pushed."""
    return {
        task_id: [
            sorted(instances[task_id][i].xcom_keys) if i in instances.get(task_id, {}) else []
            for i in range(length)
        ]
        for task_id, length in decision.lengths.items()
    }


async def _reconcile(runtime: Runtime, key: RunKey) -> None:
    api = runtime.api
    namespace, name = key
    dagrun = await api.get(DAGRUN, namespace, name)
    if dagrun is None:
        return
    status = dagrun.get("status") or {}
    if status.get("phase") in (RunPhase.SUCCEEDED, RunPhase.FAILED):
        await _expire(runtime, key, dagrun)
        return
    dag, problem = await _load_dag(api, dagrun)
    if dag is None:
        await _stall(runtime, dagrun, "InvalidDAG", problem)
        return
    if not status.get("dag"):
        # Not started: its params must satisfy the DAG's schemas (kdag trigger checked them; kubectl did not).
        spec = dagrun.get("spec") or {}
        wrong = params.run_param_problems(dag, spec.get("params"), spec.get("conf"))
        if wrong:
            await _stall(runtime, dagrun, "InvalidParams", params.describe(wrong))
            return
    run = RunInfo.from_dagrun(dagrun, dag)
    run_uid = dagrun["metadata"]["uid"]
    now = _now()

    taskruns, pods_by_task = await _read_run(api, namespace, name)
    states: dict[str, TaskState] = {}
    for task_id, taskrun in taskruns.items():
        state = await _settle_taskrun(runtime, run, taskrun, pods_by_task.get(task_id, {}), now)
        if state is not None:
            states[task_id] = state

    plain, instances = graph.split_states(states)
    decision = graph.decide(dag.tasks, plain, now, defaults=dag.defaults, instances=instances)
    mapped = _mapped_inputs(decision, instances)
    runner_image = runtime.settings.runner_image

    async def mark(task_id: str, phase: TaskPhase) -> None:
        taskrun = await _ensure_taskrun(runtime, run, run_uid, dag.resolved_task(task_id, runner_image))
        upstream = ", ".join(dag.task(task_id).upstream_ids)
        by = decision.skipped_by.get(task_id) if phase == TaskPhase.SKIPPED else None
        message = (
            f"skipped by task {by!r}"
            if by
            else decision.messages.get(task_id)  # a mapped task marked as a whole says why
            or f"{phase.value} by trigger rule over upstream tasks {upstream}"
        )
        marked = TaskRunStatus(phase=phase, attempts=0, message=message, finish_time=now)
        await _write_status(api, TASKRUN, namespace, taskrun["metadata"]["name"], marked)
        metrics.TASKS.labels(phase=phase.value).inc()

    async def start(task_id: str, map_index: int | None = None) -> None:
        task = dag.resolved_task(task_id, runner_image)
        taskrun = taskruns.get(_taskrun_key(task_id, map_index)) or await _ensure_taskrun(
            runtime, run, run_uid, task, map_index
        )
        await _start_attempt(runtime, run, taskrun, task, 1, now, mapped=mapped)

    async def retry(task_id: str, map_index: int | None = None) -> None:
        key = _taskrun_key(task_id, map_index)
        taskrun = taskruns[key]
        task = TaskSpec.model_validate(taskrun["spec"]["task"])
        state = states[key]
        await _start_attempt(
            runtime, run, taskrun, task, state.attempts + 1, now, state.reschedules, mapped=mapped
        )

    if decision.start or decision.retry or decision.start_instances or decision.retry_instances:
        await _ensure_task_rbac(runtime, namespace)
    # Independent tasks are written concurrently: a fan-out of N starts in about the time of one.
    await _all(
        *(mark(t, TaskPhase.UPSTREAM_FAILED) for t in decision.upstream_failed),
        *(mark(t, TaskPhase.SKIPPED) for t in decision.skipped),
        *(mark(t, TaskPhase.FAILED) for t in decision.failed),
        *(start(t) for t in decision.start),
        *(retry(t) for t in decision.retry),
        *(start(t, i) for t, i in decision.start_instances),
        *(retry(t, i) for t, i in decision.retry_instances),
    )
    if decision.wake_at is not None:
        _wake(runtime, key, (decision.wake_at - _now()).total_seconds() + 0.05)
    await _write_run_status(runtime, run, dagrun, decision, now)


async def _write_run_status(
    runtime: Runtime, run: RunInfo, dagrun: JSONObject, decision: graph.Decision, now: datetime
) -> None:
    """Write what changed of the run's status, post its transition Event, prune and expire when done."""
    namespace, name, dag = run.namespace, run.name, run.dag
    key = (namespace, name)
    status = dagrun.get("status") or {}
    generation = dagrun["metadata"].get("generation")
    phases = dict(decision.phases)
    for task_id in (*decision.start, *decision.retry):
        phases[task_id] = TaskPhase.RUNNING
    run_phase = decision.phase
    message = f"{decision.progress} tasks finished"
    if run_phase == RunPhase.FAILED:
        message = _failure_message(phases)
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
    if not status.get("dag"):
        # The snapshot is written whole, in the form the API server stores a DAG spec.
        patch["dag"] = dag.to_kube()
    # Only the fields whose value changed: most passes write one or two of them.
    changed = {k: patches.merge_patch(status.get(k), v) for k, v in patch.items() if status.get(k) != v}
    if changed:
        await runtime.api.patch_status(DAGRUN, namespace, name, changed)
    metrics.observe_run_phase(f"{namespace}/{name}", run_phase.value)
    if status.get("phase") != run_phase.value and finished:
        for task in dag.tasks:
            runtime.finished_seen_at.pop((namespace, names.taskrun_name(name, task.id)), None)
            for index in range(decision.lengths.get(task.id, 0)):
                runtime.finished_seen_at.pop((namespace, names.taskrun_name(name, task.id, index)), None)
        await _prune_history(runtime.api, namespace, run.dag_name)
        if (dagrun.get("spec") or {}).get("ttlSecondsAfterFinished") is not None:
            await _expire(runtime, key, {**dagrun, "status": {**status, **changed}})
    if status.get("phase") != run_phase.value:
        if run_phase == RunPhase.FAILED:
            events.post(
                runtime, keys.DAGRUN_KIND, dagrun, "Warning", "RunFailed", f"DAGRun {name} failed: {message}"
            )
        elif run_phase == RunPhase.SUCCEEDED:
            message = f"DAGRun {name} succeeded: {decision.progress}"
            events.post(runtime, keys.DAGRUN_KIND, dagrun, "Normal", "RunSucceeded", message)
        elif run_phase == RunPhase.RUNNING:
            events.post(runtime, keys.DAGRUN_KIND, dagrun, "Normal", "RunStarted", f"DAGRun {name} started")
