"""DAGRun reconciliation: read the run, its TaskRuns and pods, call `graph.decide`, write what changed.

Level-based and idempotent: every name is deterministic and AlreadyExists counts as success, so a pass
interrupted at any point (a killed controller) is finished by the next one without duplicating a pod.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine, Mapping
from datetime import UTC, datetime
from typing import Any

import kopf

from kdag import graph, metrics, names, policy
from kdag.api.models import API_VERSION, GROUP, VERSION, DAGSpec, RunPhase, TaskPhase, TaskSpec
from kdag.api.validation import parse_dag_spec
from kdag.client import DAGRUNS, DAGS, PODS, TASKRUNS, ApiError, JSONObject, KubeApi
from kdag.graph import TaskState
from kdag.handlers import conditions, events, history
from kdag.handlers.runtime import RUNTIME, RunKey, coalesced, wake_later
from kdag.render import (
    AttemptResult,
    RunInfo,
    format_time,
    parse_attempt_result,
    parse_time,
    render_task_pod,
)

logger = logging.getLogger("kdag.dagruns")

ACTIVE_PHASES = frozenset({TaskPhase.PENDING, TaskPhase.RUNNING, TaskPhase.RETRYING})
RETRY_AFTER_ERROR_SECONDS = 5.0


@kopf.on.resume(GROUP, VERSION, "dagruns")
@kopf.on.create(GROUP, VERSION, "dagruns")
async def dagrun_created(
    namespace: str | None, name: str | None, spec: kopf.Spec, status: kopf.Status, **_: Any
) -> None:
    """A new run, or one found at controller start: reconcile it unless it has finished (and has no TTL)."""
    finished = status.get("phase") in (RunPhase.SUCCEEDED, RunPhase.FAILED)
    if namespace and name and (not finished or spec.get("ttlSecondsAfterFinished") is not None):
        await request_reconcile((namespace, name))


@kopf.on.event(GROUP, VERSION, "dagruns")
async def dagrun_deleted(type: str | None, namespace: str | None, name: str | None, **_: Any) -> None:
    """Forget a deleted run's in-process state; its TaskRuns, pods and ConfigMaps go by owner references.

    A watch event, not kopf.on.delete: that would need a finalizer on every run.
    """
    if type == "DELETED" and namespace and name:
        state = RUNTIME.runs.pop((namespace, name), None)
        if state is not None and state.wake is not None:
            state.wake.cancel()
        metrics.forget_run(f"{namespace}/{name}")


async def request_reconcile(key: RunKey) -> None:
    """Reconcile the run now (coalesced with a pass already under way)."""
    await coalesced(key, reconcile_run)


async def reconcile_run(key: RunKey) -> None:
    """One pass; an API failure is logged and the pass is retried a little later, never raised to kopf."""
    try:
        await _reconcile(RUNTIME.client(), key)
    except Exception:
        logger.exception("reconciling DAGRun %s/%s failed; retrying in %ss", *key, RETRY_AFTER_ERROR_SECONDS)
        wake_later(key, RETRY_AFTER_ERROR_SECONDS, reconcile_run)


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _taskrun_manifest(run: RunInfo, run_uid: str, task: TaskSpec) -> JSONObject:
    return {
        "apiVersion": API_VERSION,
        "kind": "TaskRun",
        "metadata": {
            "name": names.taskrun_name(run.name, task.id),
            "namespace": run.namespace,
            "labels": names.labels(run.dag_name, run.name, task.id),
            "ownerReferences": [
                {
                    "apiVersion": API_VERSION,
                    "kind": "DAGRun",
                    "name": run.name,
                    "uid": run_uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {"dagRun": run.name, "taskId": task.id, "task": task.to_kube()},
    }


async def _ensure_taskrun(api: KubeApi, run: RunInfo, run_uid: str, task: TaskSpec) -> JSONObject:
    """The TaskRun of `task`, created if missing."""
    manifest = _taskrun_manifest(run, run_uid, task)
    created = await api.create(manifest, run.namespace)
    if created is not None:
        return created
    existing = await api.get(TASKRUNS, run.namespace, manifest["metadata"]["name"])
    if existing is None:
        raise RuntimeError(f"TaskRun {manifest['metadata']['name']} exists and vanished; will retry")
    return existing


async def _ensure_task_rbac(api: KubeApi, namespace: str) -> None:
    """The task ServiceAccount, Role and RoleBinding, made once per namespace per process."""
    if namespace in RUNTIME.rbac_ready:
        return
    for obj in policy.task_rbac(namespace, RUNTIME.settings.task_service_account):
        await api.create(obj, namespace)
    RUNTIME.rbac_ready.add(namespace)


def _attempt_of(pod: Mapping[str, Any]) -> int:
    label = ((pod.get("metadata") or {}).get("labels") or {}).get(names.ATTEMPT_LABEL, "")
    if label.isdigit():
        return int(label)
    suffix = str(pod["metadata"]["name"]).rsplit("-", 1)[-1]
    return int(suffix) if suffix.isdigit() else 0


def _observe_handoff(run: RunInfo, task: TaskSpec) -> None:
    """Time from the last upstream pod finishing (as this process saw it) to this pod being created."""
    seen = [
        RUNTIME.finished_seen_at.get((run.namespace, names.taskrun_name(run.name, up)))
        for up in task.upstream_ids
    ]
    if seen and all(s is not None for s in seen):
        metrics.HANDOFF_SECONDS.observe(max(0.0, time.time() - max(s for s in seen if s is not None)))


async def _start_attempt(
    api: KubeApi, run: RunInfo, taskrun: JSONObject, task: TaskSpec, attempt: int, now: datetime
) -> None:
    """Create the pod of `attempt` and record it in the TaskRun status."""
    await _ensure_task_rbac(api, run.namespace)
    meta = taskrun["metadata"]
    pod = render_task_pod(
        run=run,
        task=task,
        taskrun_name=meta["name"],
        taskrun_uid=meta["uid"],
        attempt=attempt,
        settings=RUNTIME.settings,
    )
    try:
        created = await api.create(pod, run.namespace)
    except ApiError as error:
        if "serviceaccount" not in error.message.lower():
            raise
        # The namespace was made anew since this process cached its task RBAC: make it again, once.
        RUNTIME.rbac_ready.discard(run.namespace)
        await _ensure_task_rbac(api, run.namespace)
        created = await api.create(pod, run.namespace)
    if created is not None:
        _observe_handoff(run, task)
    status = taskrun.get("status") or {}
    await api.patch_status(
        TASKRUNS,
        run.namespace,
        meta["name"],
        {
            "phase": TaskPhase.RUNNING.value,
            "attempts": attempt,
            "podName": pod["metadata"]["name"],
            "startTime": status.get("startTime") or format_time(now),
            "nextAttemptAt": None,
        },
    )
    metrics.TASKS.labels(phase=TaskPhase.RUNNING.value).inc()


async def _settle_taskrun(
    api: KubeApi,
    run: RunInfo,
    taskrun: JSONObject,
    pods: Mapping[int, JSONObject],
    now: datetime,
) -> TaskState | None:
    """Bring one TaskRun's status in line with its pods; its state for `decide`, None if never started."""
    status = taskrun.get("status") or {}
    name = taskrun["metadata"]["name"]
    task = TaskSpec.model_validate(taskrun["spec"]["task"])
    phase = TaskPhase(status.get("phase") or TaskPhase.PENDING.value)
    attempts = int(status.get("attempts") or 0)
    next_at = parse_time(status["nextAttemptAt"]) if status.get("nextAttemptAt") else None
    latest = max(pods) if pods else 0
    patch: JSONObject = {}
    gone: AttemptResult | None = None

    if phase in ACTIVE_PHASES and latest > attempts:
        # A pod made by a pass that stopped before recording it: adopt it, never make another.
        phase, attempts, next_at = TaskPhase.RUNNING, latest, None
        patch.update(
            phase=phase.value,
            attempts=attempts,
            podName=pods[latest]["metadata"]["name"],
            startTime=status.get("startTime") or format_time(now),
            nextAttemptAt=None,
        )
    if phase == TaskPhase.RUNNING and attempts > 0 and attempts not in pods:
        # The pod of the current attempt is gone (deleted, evicted) before it finished: a failed attempt.
        pod_name = names.pod_name(run.name, task.id, attempts)
        gone = AttemptResult(finished=True, message=f"pod {pod_name} was deleted before it finished")
    if phase == TaskPhase.RUNNING and attempts > 0 and (attempts in pods or gone is not None):
        result = gone or parse_attempt_result(pods[attempts])
        if result.finished:
            RUNTIME.finished_seen_at.setdefault((run.namespace, name), time.time())
            if result.xcom_bytes:
                metrics.XCOM_BYTES.inc(result.xcom_bytes)
            patch.update(exitCode=result.exit_code, message=result.message or None)
            if result.succeeded or result.skipped:
                # A skip is final, as in Airflow: no retry; graph.decide cascades it downstream.
                phase = TaskPhase.SUCCEEDED if result.succeeded else TaskPhase.SKIPPED
                patch.update(xcomKeys=list(result.xcom_keys), finishTime=format_time(now))
            else:
                next_at = graph.next_attempt_at(task, attempts, now)
                if next_at is not None:
                    phase = TaskPhase.RETRYING
                    patch["nextAttemptAt"] = format_time(next_at)
                    events.post(
                        api,
                        "TaskRun",
                        taskrun,
                        "Warning",
                        "AttemptFailed",
                        f"attempt {attempts} of task {task.id!r} failed: {result.message}; "
                        f"retrying at {format_time(next_at)}",
                    )
                else:
                    phase = TaskPhase.FAILED
                    patch["finishTime"] = format_time(now)
                    events.post(
                        api,
                        "TaskRun",
                        taskrun,
                        "Warning",
                        "TaskFailed",
                        f"task {task.id!r} failed after {attempts} attempt(s): {result.message}",
                    )
            patch["phase"] = phase.value
        elif result.message and result.message != status.get("message"):
            # Stuck before running (an image that cannot be pulled, ...): say so where users look.
            patch["message"] = result.message
    if patch:
        await api.patch_status(TASKRUNS, run.namespace, name, patch)
        metrics.TASKS.labels(phase=phase.value).inc()
    if phase == TaskPhase.PENDING and latest == 0:
        return None
    return TaskState(phase=phase, attempts=attempts, next_attempt_at=next_at)


async def _load_dag(api: KubeApi, dagrun: JSONObject) -> tuple[DAGSpec | None, str]:
    """The DAG spec of the run: its snapshot, or the DAG as it is now; else why there is none."""
    snapshot = (dagrun.get("status") or {}).get("dag")
    if snapshot:
        return DAGSpec.model_validate(snapshot), ""
    namespace = dagrun["metadata"]["namespace"]
    dag_name = str(((dagrun.get("spec") or {}).get("dagRef") or {}).get("name") or "")
    dag = await api.get(DAGS, namespace, dag_name)
    if dag is None:
        return None, f"spec.dagRef.name: DAG {dag_name!r} does not exist in namespace {namespace!r}"
    model, problems = parse_dag_spec(dag.get("spec") or {})
    if model is None or problems:
        return None, f"DAG {dag_name!r} is invalid: " + "; ".join(problems)
    return model, ""


async def _stall(api: KubeApi, dagrun: JSONObject, reason: str, message: str) -> None:
    status = dagrun.get("status") or {}
    meta = dagrun["metadata"]
    wanted = conditions.merge_conditions(
        status.get("conditions"),
        conditions.invalid_conditions(reason, message),
        meta.get("generation"),
        format_time(_now()),
    )
    if wanted != status.get("conditions"):
        await api.patch_status(
            DAGRUNS, meta["namespace"], meta["name"], {"phase": RunPhase.PENDING.value, "conditions": wanted}
        )
        events.post(api, "DAGRun", dagrun, "Warning", reason, message)


async def _all(*steps: Coroutine[Any, Any, None]) -> None:
    """Run the steps concurrently; every step runs to its end, then the first failure is raised."""
    results = await asyncio.gather(*steps, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result


async def _expire(api: KubeApi, key: RunKey, dagrun: JSONObject) -> None:
    """Delete a finished run past spec.ttlSecondsAfterFinished, or look again when it will be."""
    expiry = history.ttl_expiry(dagrun)
    if expiry is None:
        return
    wait = (expiry - _now()).total_seconds()
    if wait > 0:
        wake_later(key, wait + 0.5, reconcile_run)
    elif await api.delete(DAGRUNS, key[0], key[1]):
        logger.info("deleted DAGRun %s/%s: its ttlSecondsAfterFinished has passed", *key)


async def _prune_history(api: KubeApi, namespace: str, dag_name: str) -> None:
    """Delete the DAG's oldest finished runs beyond its spec.runHistoryLimit."""
    dag = await api.get(DAGS, namespace, dag_name)
    if dag is None:
        return
    limit = history.run_history_limit(dag.get("spec") or {})
    runs = [
        r for r in await api.list(DAGRUNS, namespace, {})
        if ((r.get("spec") or {}).get("dagRef") or {}).get("name") == dag_name
    ]
    for old in history.runs_beyond_history(runs, limit):
        if await api.delete(DAGRUNS, namespace, old):
            logger.info("deleted DAGRun %s/%s: beyond the run history limit %d of DAG %s",
                        namespace, old, limit, dag_name)


def _failure_message(phases: Mapping[str, TaskPhase]) -> str:
    failed = sorted(tid for tid, phase in phases.items() if phase == TaskPhase.FAILED)
    upstream_failed = sorted(tid for tid, phase in phases.items() if phase == TaskPhase.UPSTREAM_FAILED)
    parts = []
    if failed:
        parts.append("failed: " + ", ".join(failed))
    if upstream_failed:
        parts.append("upstream failed: " + ", ".join(upstream_failed))
    return "; ".join(parts)


async def _reconcile(api: KubeApi, key: RunKey) -> None:
    namespace, name = key
    dagrun = await api.get(DAGRUNS, namespace, name)
    if dagrun is None:
        return
    status = dagrun.get("status") or {}
    if status.get("phase") in (RunPhase.SUCCEEDED, RunPhase.FAILED):
        await _expire(api, key, dagrun)
        return
    dag, problem = await _load_dag(api, dagrun)
    if dag is None:
        await _stall(api, dagrun, "InvalidDAG", problem)
        return
    run = RunInfo.from_dagrun(dagrun, dag)
    run_uid = dagrun["metadata"]["uid"]
    now = _now()

    selector = {names.DAGRUN_LABEL: names.label_value(name)}
    taskruns = {tr["spec"]["taskId"]: tr for tr in await api.list(TASKRUNS, namespace, selector)}
    pods_by_task: dict[str, dict[int, JSONObject]] = {}
    for pod in await api.list(PODS, namespace, selector):
        task_id = pod["metadata"].get("labels", {}).get(names.TASK_LABEL)
        if task_id:
            pods_by_task.setdefault(task_id, {})[_attempt_of(pod)] = pod

    states: dict[str, TaskState] = {}
    for task_id, taskrun in taskruns.items():
        state = await _settle_taskrun(api, run, taskrun, pods_by_task.get(task_id, {}), now)
        if state is not None:
            states[task_id] = state

    decision = graph.decide(dag.tasks, states, now)
    runner_image = RUNTIME.settings.runner_image
    async def mark(task_id: str, phase: TaskPhase) -> None:
        taskrun = await _ensure_taskrun(api, run, run_uid, dag.resolved_task(task_id, runner_image))
        upstream = ", ".join(dag.task(task_id).upstream_ids)
        await api.patch_status(
            TASKRUNS,
            namespace,
            taskrun["metadata"]["name"],
            {
                "phase": phase.value,
                "attempts": 0,
                "message": f"{phase.value} by trigger rule over upstream tasks {upstream}",
                "finishTime": format_time(now),
            },
        )
        metrics.TASKS.labels(phase=phase.value).inc()

    async def start(task_id: str) -> None:
        task = dag.resolved_task(task_id, runner_image)
        taskrun = taskruns.get(task_id) or await _ensure_taskrun(api, run, run_uid, task)
        await _start_attempt(api, run, taskrun, task, 1, now)

    async def retry(task_id: str) -> None:
        taskrun = taskruns[task_id]
        task = TaskSpec.model_validate(taskrun["spec"]["task"])
        await _start_attempt(api, run, taskrun, task, states[task_id].attempts + 1, now)

    if decision.start or decision.retry:
        await _ensure_task_rbac(api, namespace)
    # Independent tasks are written concurrently: a fan-out of N starts in about the time of one.
    await _all(
        *(mark(t, TaskPhase.UPSTREAM_FAILED) for t in decision.upstream_failed),
        *(mark(t, TaskPhase.SKIPPED) for t in decision.skipped),
        *(start(t) for t in decision.start),
        *(retry(t) for t in decision.retry),
    )
    if decision.wake_at is not None:
        wake_later(key, (decision.wake_at - _now()).total_seconds() + 0.05, reconcile_run)

    phases = dict(decision.phases)
    for task_id in (*decision.start, *decision.retry):
        phases[task_id] = TaskPhase.RUNNING
    run_phase = decision.phase
    message = f"{decision.progress} tasks finished"
    if run_phase == RunPhase.FAILED:
        message = _failure_message(phases)
    new_status: JSONObject = {
        "phase": run_phase.value,
        "progress": decision.progress,
        "tasks": {tid: p.value for tid, p in sorted(phases.items())},
        "startTime": status.get("startTime") or format_time(now),
        "observedGeneration": dagrun["metadata"].get("generation"),
        "conditions": conditions.merge_conditions(
            status.get("conditions"),
            conditions.run_conditions(run_phase.value, message),
            dagrun["metadata"].get("generation"),
            format_time(now),
        ),
    }
    if run_phase in (RunPhase.SUCCEEDED, RunPhase.FAILED):
        new_status["finishTime"] = format_time(now)
    if not status.get("dag"):
        new_status["dag"] = dag.to_kube()
    changed = {k: v for k, v in new_status.items() if status.get(k) != v}
    if changed:
        await api.patch_status(DAGRUNS, namespace, name, changed)
    metrics.observe_run_phase(f"{namespace}/{name}", run_phase.value)
    if status.get("phase") != run_phase.value and run_phase in (RunPhase.SUCCEEDED, RunPhase.FAILED):
        for task in dag.tasks:
            RUNTIME.finished_seen_at.pop((namespace, names.taskrun_name(name, task.id)), None)
        await _prune_history(api, namespace, run.dag_name)
        if (dagrun.get("spec") or {}).get("ttlSecondsAfterFinished") is not None:
            await _expire(api, key, {**dagrun, "status": {**status, **new_status}})
    if status.get("phase") != run_phase.value:
        if run_phase == RunPhase.FAILED:
            events.post(api, "DAGRun", dagrun, "Warning", "RunFailed", f"DAGRun {name} failed: {message}")
        elif run_phase == RunPhase.SUCCEEDED:
            message = f"DAGRun {name} succeeded: {decision.progress}"
            events.post(api, "DAGRun", dagrun, "Normal", "RunSucceeded", message)
        elif run_phase == RunPhase.RUNNING:
            events.post(api, "DAGRun", dagrun, "Normal", "RunStarted", f"DAGRun {name} started")
